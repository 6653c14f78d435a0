"""The daily drift monitor: stable windows emit nothing, a covariate shift alerts on the shifted
feature, and a second alert for the same features within the cool-down is suppressed."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-01-05")


@pytest.fixture(scope="module")
def shifted_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    sim = simulate(weeks=8, users=1500, scenarios="covariate_shift@6", seed=5, shift_size=0.6)
    contract = sim.contract.save(root / "contract.yaml")
    cfg = {
        "home": str(root / "home"),
        "contract": str(contract),
        "model_name": "churn-monitor",
        "windows": {"train_weeks": 3, "backtest_folds": 0},
        "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100},
        "drift": {"cooldown_hours": 24},
    }
    path = root / "driftline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    settings = load_settings(path)
    settings.ensure_home()
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    from flows.refresh_and_retrain import refresh_and_retrain

    state = refresh_and_retrain(
        as_of=(START + pd.Timedelta(weeks=5)).to_pydatetime(), config=str(path), return_state=True
    )
    assert state.is_completed(), state.message
    return str(path)


def test_monitor_alerts_once_then_debounces(shifted_world):
    from flows.drift_monitor import drift_monitor

    quiet = drift_monitor(as_of=(START + pd.Timedelta(weeks=5, days=4)).to_pydatetime(), days=3, config=shifted_world)
    assert quiet["level"] in ("stable", "warn") and quiet["event"] in (None, "driftline.drift.warn")
    assert "sessions_per_week" not in quiet["features"]

    when = START + pd.Timedelta(weeks=6, days=3)
    alert = drift_monitor(as_of=when.to_pydatetime(), days=3, config=shifted_world)
    assert alert["level"] == "alert" and alert["event"] == "driftline.drift.alert", alert["details"]
    assert "sessions_per_week" in alert["features"]
    detail = alert["details"]["sessions_per_week"]
    assert detail["psi"] > detail["alert"] >= 0.25 and detail["key"] is True
    assert alert["report"] and alert["report"].endswith(".html")

    again = drift_monitor(as_of=(when + pd.Timedelta(hours=2)).to_pydatetime(), days=3, config=shifted_world)
    assert again["level"] == "alert" and again["event"] is None  # same features within the cool-down

    later = drift_monitor(as_of=(when + pd.Timedelta(hours=30)).to_pydatetime(), days=3, config=shifted_world)
    assert later["event"] == "driftline.drift.alert"  # cool-down over


def test_weekly_run_retrains_on_a_shifted_key_feature(shifted_world):
    """A moved distribution is the drift step's call (retrain), not a validation stop."""
    from flows.refresh_and_retrain import refresh_and_retrain

    state = refresh_and_retrain(
        as_of=(START + pd.Timedelta(weeks=7, hours=3)).to_pydatetime(), config=shifted_world, return_state=True
    )
    assert state.is_completed(), state.message
    s = state.result()
    assert s["drift"]["action"] == "retrain" and s["drift"]["trigger"] == "drift", s["drift"]
    assert s["drift"]["flagged"]["sessions_per_week"]["severity"] == "alert"
    assert s["registration"]["created"] is True
