"""`driftline run` turns bad settings and unusable data into one line and exit 2."""

from __future__ import annotations

import pytest
import yaml

from driftline.cli import _common, build_app

pytestmark = pytest.mark.slow


def _run(argv, capsys):
    code = _common.run(build_app(), argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_settings_fail_before_prefect_starts(tmp_path, capsys, tiny_contract):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("drift:\n  psi_warn: abc\n")
    code, _, err = _run(["--config", str(cfg), "run", "refresh-and-retrain"], capsys)
    assert code == 2 and err.count("\n") == 1 and "field drift.psi_warn" in err
    cfg.write_text(yaml.safe_dump({"contract": str(tmp_path / "missing.yaml")}))
    code, _, err = _run(["--config", str(cfg), "run", "drift-monitor"], capsys)
    assert code == 2 and err.count("\n") == 1 and "missing.yaml: cannot read contract" in err
    code, _, err = _run(["--config", str(cfg), "run", "refresh-and-retrain", "--trigger", "bogus"], capsys)
    assert code == 2 and "unknown trigger 'bogus'" in err
    code, _, err = _run(["run", "refresh-and-retrain", "--as-of", "garbage"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: Invalid value for '--as-of'")


def test_a_run_on_an_empty_store_says_why_in_one_line(tmp_path, capsys, tiny_contract):
    cfg = tmp_path / "driftline.yaml"
    contract = tiny_contract.save(tmp_path / "contract.yaml")
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "contract": str(contract)}))
    code, _, err = _run(["--config", str(cfg), "run", "refresh-and-retrain", "--as-of", "2026-03-02"], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "no labelled rows in the test window 2026-02-16..2026-02-23" in err
