"""`driftline demo` end to end on a small population (the full-size run is `make demo`)."""

from __future__ import annotations

import pytest

from driftline.cli import _common, build_app
from driftline.registry import ModelRegistry
from driftline.settings import load_settings

pytestmark = pytest.mark.slow


def test_small_demo_tells_the_story(tmp_path, capsys):
    work = tmp_path / "demo"
    code = _common.run(build_app(), ["demo", "--workdir", str(work), "--weeks", "9", "--users", "1500"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "promoted v1 (trigger bootstrap)" in out
    assert "blocked" in out and "'United States': 'US'" in out  # country names from week 7, caught
    assert "mlflow ui --backend-store-uri" in out and "4. Versions" in out
    reg = ModelRegistry.from_settings(load_settings(work / "driftline.yaml"))
    versions = reg.list_versions()
    assert versions[0].trigger == "bootstrap" and reg.champion() is not None
    # A second demo into the same folder refuses instead of mixing two stories.
    assert _common.run(build_app(), ["demo", "--workdir", str(work)]) == 2
    assert "already holds a demo" in capsys.readouterr().err
