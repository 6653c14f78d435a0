"""The weekly pipeline feeds the pool, builds and stores the edge-case suite, and gates on it;
the review commands export, import and report through the CLI. Real store, MLflow and GX."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftline import pipeline
from driftline.cli import build_app
from driftline.cli._common import run
from driftline.contract import load_contract
from driftline.feedback import FeedbackStore
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow
START = pd.Timestamp("2026-01-05")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback")
    sim = simulate(weeks=9, users=1500, scenarios="concept_drift@4", seed=5, start=START.date())
    cfg = {
        "home": str(root / "home"),
        "contract": str(sim.contract.save(root / "contract.yaml")),
        "model_name": "feedback-test",
        "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 1},
        "sampling": {"test_size": 800},
        "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100},
        "gates": {"margin": -1.0},  # the paired gate passes; the edge-case gates decide
    }
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    s = load_settings(root / "driftline.yaml")
    s.ensure_home()
    c = load_contract(s.contract)
    store = Store.from_settings(s, c).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    ctx = pipeline.Context(s, c, store, ModelRegistry.from_settings(s), "test")
    first = pipeline.run_week(ctx, START + pd.Timedelta(weeks=5, hours=3))
    second = pipeline.run_week(ctx, START + pd.Timedelta(weeks=8, hours=3), force_retrain=True)
    return {"root": root, "settings": s, "ctx": ctx, "first": first, "second": second}


def test_the_weekly_run_fills_the_pool_and_gates_on_the_edge_cases(ran):
    first, second, ctx = ran["first"], ran["second"], ran["ctx"]
    assert first.status == "registered" and second.status == "registered", (first.message, second.message)
    pool = FeedbackStore(ctx.store).read_pool()
    assert len(pool) > 0 and set(pool["reason"]) <= {"misclassified", "confident_error"}
    assert set(pool["model_version"]) == {"1"}  # the champion's errors
    fb = second.summary["training_window"]["feedback"]
    assert fb["used"] == fb["in_window"] + fb["added"] <= fb["cap"]
    gates = {g["name"]: g for g in second.summary["gates"]["gates"]}
    assert {"edge_slices", "flip_rate"} <= set(gates)
    edge = second.summary["gates"]["edge_cases"]
    path = edge["suite"]["built_from"]["path"]
    stored = json.loads(Path(path).read_text())
    assert stored["digest"] == edge["suite"]["digest"] and path.endswith(f"{stored['digest']}.json")
    # The MLflow version records the feedback rows it was trained with and the edge-case verdicts.
    v = ctx.registry.get(second.summary["registration"]["version"])
    import mlflow

    run = mlflow.MlflowClient(ran["settings"].mlflow_tracking_uri).get_run(v.run_id)
    assert run.data.params["n_feedback"] == str(fb["used"])
    assert v.tags["gate.edge_slices"].startswith(("pass:", "fail:"))
    assert v.tags["gate.flip_rate"].startswith(("pass:", "fail:"))


def test_review_commands_export_import_and_report(ran, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ran["root"])
    app = build_app()
    out = tmp_path / "cases.csv"
    assert run(app, ["review", "export", "--limit", "20", "--out", str(out)]) == 0
    sheet = pd.read_csv(out, dtype=str)
    assert 0 < len(sheet) <= 20
    observed = ran["ctx"].store.labels_for(sheet["request_id"].tolist())
    sheet["label"] = [observed.get(r, "1") for r in sheet["request_id"]]
    sheet.loc[0, "label"] = "perhaps"
    sheet.to_csv(out, index=False)
    capsys.readouterr()
    assert run(app, ["review", "import", str(out), "--reviewer", "ana", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reconciles"] and result["quarantined"] == {"bad_label": 1}
    assert result["accepted"] == len(sheet) - 1
    assert run(app, ["review", "status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["pool"]["by_source"]["review"] == len(sheet) - 1
    # A file without a label column: one line, exit 2, nothing stored.
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id\nx\n")
    before = ran["ctx"].store.count("quarantine")
    assert run(app, ["review", "import", str(bad)]) == 2
    assert "missing required column" in capsys.readouterr().err
    assert ran["ctx"].store.count("quarantine") == before
