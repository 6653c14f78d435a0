"""The daily drift monitor: the trigger policy sets the level (a shifted key feature alerts, the
same shift on a non-key feature only warns), one alert per episode within the cool-down, and
renamed countries are reported as serving skew instead of starting a retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-01-05")
MODEL = "churn-monitor"


def _world(root: Path, scenarios: str, **sim: Any) -> tuple[str, Any]:
    """A simulated store with a champion trained on weeks 2-4; returns the config path and contract."""
    sim_result = simulate(weeks=8, users=1500, scenarios=scenarios, seed=5, **sim)
    contract = sim_result.contract.save(root / "contract.yaml")
    cfg = {
        "home": str(root / "home"),
        "contract": str(contract),
        "model_name": MODEL,
        "windows": {"train_weeks": 3, "backtest_folds": 0},
        "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100},
        "drift": {"cooldown_hours": 24},
    }
    path = root / "driftline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    settings = load_settings(path)
    settings.ensure_home()
    store = Store.from_settings(settings, sim_result.contract).create()
    store.append_predictions(sim_result.traffic)
    store.append_outcomes(sim_result.outcomes)
    from flows.refresh_and_retrain import refresh_and_retrain

    state = refresh_and_retrain(
        as_of=(START + pd.Timedelta(weeks=5)).to_pydatetime(), config=str(path), return_state=True
    )
    assert state.is_completed(), state.message
    return str(path), sim_result.contract


@pytest.fixture(scope="module")
def shifted_world(tmp_path_factory) -> dict[str, str]:
    """Sessions per week (a key feature) shifts from week 6; a second config marks it non-key."""
    root = tmp_path_factory.mktemp("monitor")
    path, contract = _world(root, "covariate_shift@6", shift_size=0.6)
    features = dict(contract.features)
    features["sessions_per_week"] = features["sessions_per_week"].model_copy(update={"key": False})
    non_key = contract.model_copy(update={"features": features}).save(root / "contract-non-key.yaml")
    cfg = yaml.safe_load(Path(path).read_text())
    (root / "non-key.yaml").write_text(yaml.safe_dump({**cfg, "contract": str(non_key)}))
    return {"key": path, "non_key": str(root / "non-key.yaml")}


@pytest.fixture(scope="module")
def country_world(tmp_path_factory) -> str:
    """From week 6 serving sends country names ("United States") instead of ISO codes ("US")."""
    return _world(tmp_path_factory.mktemp("countries"), "country_names@6")[0]


@pytest.fixture
def events(monkeypatch) -> list[dict[str, Any]]:
    """The events the monitor's tasks emit (still sent to the test server)."""
    import tasks.monitor as tm

    sent: list[dict[str, Any]] = []
    real = tm.emit_event

    def record(**kw: Any) -> Any:
        sent.append(kw)
        return real(**kw)

    monkeypatch.setattr(tm, "emit_event", record)
    return sent


def test_policy_sets_the_level_and_alerts_once_per_episode(shifted_world, events):
    from flows.drift_monitor import drift_monitor

    quiet = drift_monitor(
        as_of=(START + pd.Timedelta(weeks=5, days=4)).to_pydatetime(), days=3, config=shifted_world["key"]
    )
    assert quiet["level"] in ("stable", "warn") and quiet["event"] in (None, "driftline.drift.warn")
    assert "sessions_per_week" not in quiet["features"]

    when = START + pd.Timedelta(weeks=6, days=3)
    # The same shift on a feature the contract does not call key: the policy says investigate.
    non_key = drift_monitor(as_of=when.to_pydatetime(), days=3, config=shifted_world["non_key"])
    assert non_key["level"] == "warn" and non_key["event"] == "driftline.drift.warn", non_key["reasons"]
    detail = non_key["details"]["sessions_per_week"]
    assert detail["severity"] == "alert" and detail["key"] is False
    assert any(r.startswith("feature 'sessions_per_week' at alert") for r in non_key["reasons"])

    alert = drift_monitor(as_of=when.to_pydatetime(), days=3, config=shifted_world["key"])
    assert alert["level"] == "alert" and alert["event"] == "driftline.drift.alert", alert["details"]
    assert alert["reasons"][0].startswith("key feature 'sessions_per_week' at alert (PSI ")
    assert "sessions_per_week" in alert["features"]
    detail = alert["details"]["sessions_per_week"]
    assert detail["psi"] > detail["alert"] >= 0.25 and detail["key"] is True
    assert alert["report"] and alert["report"].endswith(".html")
    assert alert["skew"] is None and alert["skew_event"] is None

    # Within the cool-down the episode stays quiet, over this window or a shorter one.
    for hours, days in ((2, 3), (20, 1)):
        again = drift_monitor(
            as_of=(when + pd.Timedelta(hours=hours)).to_pydatetime(), days=days, config=shifted_world["key"]
        )
        assert again["level"] == "alert" and again["event"] is None, (hours, days, again["features"])

    later = drift_monitor(as_of=(when + pd.Timedelta(hours=30)).to_pydatetime(), days=3, config=shifted_world["key"])
    assert later["event"] == "driftline.drift.alert"  # cool-down over: a new episode

    alerts = [e for e in events if e["event"] == "driftline.drift.alert"]
    assert len(alerts) == 2
    assert alerts[0]["resource"]["prefect.resource.id"] == f"driftline.model.{MODEL}"
    assert alerts[0]["payload"]["as_of"] == when.isoformat()
    assert "sessions_per_week" in alerts[0]["payload"]["features"] and alerts[0]["payload"]["reasons"]


def test_country_names_are_skew_not_a_retrain(country_world, events):
    from flows.drift_monitor import drift_monitor

    when = START + pd.Timedelta(weeks=6, days=3)
    r = drift_monitor(as_of=when.to_pydatetime(), days=3, config=country_world)
    assert r["level"] != "alert" and r["event"] != "driftline.drift.alert", r["reasons"]
    assert "country" not in r["features"]
    assert r["skew_event"] == "driftline.skew.detected"
    assert r["skew"]["features"] == ["country"]
    mapping = r["skew"]["mapping"]["country"]
    assert mapping["United States"] == "US" and mapping["Germany"] == "DE"
    assert not any("'country'" in reason for reason in r["reasons"])

    assert "driftline.drift.alert" not in [e["event"] for e in events]
    (skew,) = [e for e in events if e["event"] == "driftline.skew.detected"]
    assert skew["resource"]["prefect.resource.id"] == f"driftline.model.{MODEL}"
    assert skew["payload"]["features"] == ["country"] and skew["payload"]["mapping"]["country"] == mapping
    assert skew["payload"]["as_of"] == when.isoformat()


def test_weekly_run_retrains_on_a_shifted_key_feature(shifted_world):
    """A moved distribution is the drift step's call (retrain), not a validation stop."""
    from flows.refresh_and_retrain import refresh_and_retrain

    state = refresh_and_retrain(
        as_of=(START + pd.Timedelta(weeks=7, hours=3)).to_pydatetime(), config=shifted_world["key"], return_state=True
    )
    assert state.is_completed(), state.message
    s = state.result()
    assert s["drift"]["action"] == "retrain" and s["drift"]["trigger"] == "drift", s["drift"]
    assert s["drift"]["flagged"]["sessions_per_week"]["severity"] == "alert"
    assert s["registration"]["created"] is True
