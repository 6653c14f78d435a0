"""`driftline demo` end to end on a small population (the full-size run is `make demo`).

Real components throughout: the gateway in-process, MLflow on SQLite, Prefect's ephemeral API,
the store on SQLite; nothing is patched.
"""

from __future__ import annotations

import pandas as pd
import pytest

from driftline.cli import _common, build_app
from driftline.contract import load_contract
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.store import Store

pytestmark = pytest.mark.slow


def test_small_demo_tells_the_story(tmp_path, capsys):
    work = tmp_path / "demo"
    code = _common.run(build_app(), ["demo", "--workdir", str(work), "--weeks", "9", "--users", "3000"])
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # the console wraps long lines at 80 columns
    assert code == 0, out
    assert "promoted v1 (trigger bootstrap)" in flat
    assert "blocked" in flat and "'United States': 'US'" in flat  # country names from week 7, caught
    assert "mlflow ui --backend-store-uri" in out and "4. Versions" in out and "5. Rollouts" in out
    settings = load_settings(work / "driftline.yaml")
    reg = ModelRegistry.from_settings(settings)
    versions = reg.list_versions()
    assert versions[0].trigger == "bootstrap" and reg.champion() is not None
    assert not settings.gates.auto_promote  # candidates reach champion only through a rollout

    # The predictions log after the bootstrap was written by the gateway, not by file ingest.
    contract = load_contract(settings.contract)
    store = Store.from_settings(settings, contract)
    try:
        logged = store.read_predictions()
    finally:
        store.dispose()
    start = pd.Timestamp("2026-01-05")
    served = logged[logged[contract.timestamp] >= start + pd.Timedelta(weeks=4, hours=3)]
    history = logged[logged[contract.timestamp] < start + pd.Timedelta(weeks=4, hours=3)]
    assert len(served) > 1000 and len(history) > 1000
    assert served["variant"].notna().all() and served["model_version"].notna().all()
    assert set(served["variant"]) <= {"champion", "challenger"} and "challenger" in set(served["variant"])
    assert history["variant"].isna().all()  # the old system's log, ingested

    # The deliberately bad candidate was reverted by its rollout; at least one retrained one was promoted.
    bad = [v.version for v in versions if "shuffled labels" in v.tags.get("demo_note", "")]
    assert len(bad) == 1
    reverted = [m for m in reg.history("challenger") if m.kind == "clear" and "rollout revert" in m.reason]
    assert bad[0] in {m.from_version for m in reverted}
    assert bad[0] not in {m.to_version for m in reg.history("champion")}  # it never served everyone
    promoted = [m for m in reg.history("champion") if m.reason.startswith("rollout ") and " complete" in m.reason]
    assert promoted, [(m.to_version, m.reason) for m in reg.history("champion")]
    assert "canary 100% promote" in flat
    assert any(code in flat for code in ("worse_on_same_rows", "metric_drop", "extreme_disagreement"))

    # The country-name week: blocked, the reviewed mapping applied to the contract, rerun and passed.
    assert "reviewed mapping applied: country aliases" in flat
    assert "week 7 passes with the alias mapping" in flat
    aliases = contract.features["country"].aliases or {}
    assert aliases.get("United States") == "US"

    # A second demo into the same folder refuses instead of mixing two stories.
    assert _common.run(build_app(), ["demo", "--workdir", str(work)]) == 2
    assert "already holds a demo" in capsys.readouterr().err
