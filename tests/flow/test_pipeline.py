"""One pipeline: the runner without Prefect and the flow run the same steps and reach the same result."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from driftline import pipeline
from driftline.contract import load_contract
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow
START = pd.Timestamp("2026-01-05")
AS_OF = START + pd.Timedelta(weeks=5, hours=3)


def test_week_is_normalised_once():
    from driftline.settings import Windows

    w = Windows(train_weeks=3, test_weeks=1, label_delay_days=7)
    monday = pipeline.Week.of(AS_OF, w)
    wednesday = pipeline.Week.of(AS_OF + pd.Timedelta(days=2, hours=14), w)
    aware = pipeline.Week.of(AS_OF.tz_localize("UTC").tz_convert("Europe/Berlin"), w)  # the same instant
    assert monday.split == wednesday.split
    assert monday.as_of.tzinfo is None
    assert aware.as_of == AS_OF and aware.split == monday.split
    assert monday.recent_start == AS_OF - pd.Timedelta(days=7)


@pytest.fixture
def worlds(tmp_path):
    """Two identical, separate homes over the same simulated store."""
    sim = simulate(weeks=6, users=700, scenarios="stable", seed=3, start=START.date())
    out = []
    for name in ("plain", "flow"):
        root = tmp_path / name
        root.mkdir()
        contract = sim.contract.save(root / "contract.yaml")
        cfg = {
            "home": str(root / "home"),
            "contract": str(contract),
            "model_name": "pipeline-test",
            "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 1},
            "sampling": {"test_size": 400},
            "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100},
        }
        (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
        s = load_settings(root / "driftline.yaml")
        s.ensure_home()
        store = Store.from_settings(s, sim.contract).create()
        store.append_predictions(sim.traffic)
        store.append_outcomes(sim.outcomes)
        out.append(root)
    return out


def test_the_plain_runner_and_the_flow_run_the_same_pipeline(worlds):
    from flows.refresh_and_retrain import refresh_and_retrain

    plain_root, flow_root = worlds
    s = load_settings(plain_root / "driftline.yaml")
    c = load_contract(s.contract)
    ctx = pipeline.Context(s, c, Store.from_settings(s, c).create(), ModelRegistry.from_settings(s), "test")
    seen: list[str] = []

    def recording(step, fn, *args, **kwargs):
        seen.append(step)
        return fn(*args, **kwargs)

    outcome = pipeline.run_week(ctx, AS_OF, "schedule", call=recording)
    assert outcome.status == "registered" and seen == list(pipeline.STEPS)

    state = refresh_and_retrain(
        as_of=AS_OF.to_pydatetime(), config=str(flow_root / "driftline.yaml"), return_state=True
    )
    assert state.is_completed(), state.message
    flow_summary = state.result()
    a, b = outcome.summary, flow_summary
    assert a["action"] == b["action"] == "promoted"
    assert a["datasets"]["test_hash"] == b["datasets"]["test_hash"]
    assert a["datasets"]["train_hash"] == b["datasets"]["train_hash"]
    for m in ("average_precision", "roc_auc", "f1", "positive_rate"):
        assert a["candidate_metrics"][m] == pytest.approx(b["candidate_metrics"][m], abs=1e-12), m
    assert a["drift"]["codes"] == b["drift"]["codes"]
    shutil.rmtree(plain_root / "home" / "tmp", ignore_errors=True)
