"""The drift monitor's parts: the policy's level, skew left out, the payload, episode debounce."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline import monitor
from driftline.contract import Contract
from driftline.drift import DriftReport, FeatureDrift, fit_profile
from driftline.drift.bands import Band
from driftline.settings import DriftSettings, Settings
from driftline.weekly import Champion

END = pd.Timestamp("2026-03-10 02:00")
S = DriftSettings()


def _result(level: str, flagged: dict, version: str | None = "4", end: pd.Timestamp = END) -> monitor.MonitorResult:
    return monitor.MonitorResult(level, end - pd.Timedelta(days=1), end, 1234, flagged, None, version)


def _flag(severity: str, key: bool = False) -> dict[str, Any]:
    psi = 0.5 if severity == "alert" else 0.12
    return {"psi": psi, "severity": severity, "warn": 0.1, "alert": 0.25, "key": key}


ALERT = {"sessions_per_week": _flag("alert", key=True)}
WARN = {"tenure_days": _flag("warn")}


def feat(name: str, psi: float, *, key: bool = False) -> FeatureDrift:
    sev = "stable" if psi < 0.1 else "alert" if psi > 0.25 else "warn"
    band = Band(0.1, 0.25, 0.1, 0.25, "configured")
    return FeatureDrift(
        name, "numeric", psi, psi / 2, 0.1, sev, band, "ks", 0.1, 0.5, 5000, 500, 0.0, None, 0.0, {}, [], [], [], key
    )


def report(*features: FeatureDrift) -> DriftReport:
    return DriftReport("c", "fp", 5000, 500, {f.name: f for f in features}, S)


# -- the level is the trigger policy's -------------------------------------------------------


def test_non_key_feature_at_alert_warns_key_feature_alerts() -> None:
    level, decision = monitor.judge(report(feat("tenure_days", 0.4), feat("plan", 0.01)), S)
    assert (level, decision.action) == ("warn", "investigate")
    assert decision.reasons == ["feature 'tenure_days' at alert (PSI 0.400 > alert threshold 0.250)"]
    level, decision = monitor.judge(report(feat("country", 0.4, key=True), feat("plan", 0.01)), S)
    assert (level, decision.action) == ("alert", "retrain")
    assert decision.reasons == ["key feature 'country' at alert (PSI 0.400 > alert threshold 0.250)"]


def test_enough_features_at_warn_alert() -> None:
    three = report(feat("a", 0.12), feat("b", 0.11), feat("c", 0.2), feat("d", 0.01))
    level, decision = monitor.judge(three, S)
    assert level == "alert"
    assert decision.reasons[0] == "3 features at warn or above (retrain at ≥ 3): 'c' (0.200), 'a' (0.120), 'b' (0.110)"
    assert monitor.judge(three, DriftSettings(warn_features_for_retrain=4))[0] == "warn"
    assert monitor.judge(report(feat("a", 0.12), feat("b", 0.11)), S)[0] == "warn"
    assert monitor.judge(report(feat("a", 0.01)), S)[0] == "stable"


# -- evaluate_window on tiny frames ---------------------------------------------------------------

N = 600


class _ConstantModel:
    """Scores every row 0.3: the score never drifts, so only features decide."""

    classes_ = (0, 1)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.tile([0.7, 0.3], (len(x), 1))


class _Store:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def read_predictions(self, start: Any, end: Any) -> pd.DataFrame:
        return self.frame.copy()


def _frame(n: int = N, *, country: list[str] | None = None, tenure_shift: float = 0.0) -> pd.DataFrame:
    """Deterministic rows: countries and plans cycle, tenure runs evenly over 0..999."""
    i = np.arange(n)
    countries = country or ["US", "GB", "DE"]
    return pd.DataFrame(
        {
            "country": [countries[k % len(countries)] for k in i],
            "plan": np.where(i % 4 == 0, "pro", "free"),
            "tenure_days": (i * 1000.0 / n) + tenure_shift,
            "score_hint": np.where(i % 10 == 0, np.nan, (i % 7) / 7.0),
            "auto_renew": i % 5 < 2,
        }
    )


def _evaluate(tiny_contract: Contract, window: pd.DataFrame) -> monitor.MonitorResult:
    train = _frame(3 * N)
    profile = fit_profile(train.assign(score=0.3), tiny_contract, S, score_column="score")
    champion = Champion("4", _ConstantModel(), profile, train, {})
    return monitor.evaluate_window(_Store(window), tiny_contract, Settings(), champion, END, 1)


def test_window_like_training_is_stable(tiny_contract: Contract) -> None:
    r = _evaluate(tiny_contract, _frame())
    assert (r.level, r.event, r.flagged, r.skew) == ("stable", None, {}, None)


def test_non_key_feature_at_alert_is_a_warning_not_an_alert(tiny_contract: Contract) -> None:
    r = _evaluate(tiny_contract, _frame(tenure_shift=2000.0))
    assert (r.level, r.event) == ("warn", "driftline.drift.warn")
    assert r.features == ["tenure_days"]
    assert r.flagged["tenure_days"]["severity"] == "alert" and r.flagged["tenure_days"]["key"] is False
    assert r.reasons[0].startswith("feature 'tenure_days' at alert (PSI ")
    assert r.report.decision.action == "investigate"


def test_key_feature_at_alert_alerts(tiny_contract: Contract) -> None:
    r = _evaluate(tiny_contract, _frame(country=["US"]))
    assert (r.level, r.event, r.features) == ("alert", "driftline.drift.alert", ["country"])
    assert r.reasons[0].startswith("key feature 'country' at alert (PSI ")
    assert r.payload("churn")["reasons"] == r.reasons


def test_renamed_countries_are_skew_not_an_alert(tiny_contract: Contract) -> None:
    r = _evaluate(tiny_contract, _frame(country=["United States", "United Kingdom", "Germany"]))
    assert r.report.features["country"].severity == "alert"  # as served, the key feature is at alert
    assert (r.level, r.event) == ("stable", None)
    assert r.features == []
    assert r.skew["features"] == ["country"]
    assert r.skew["mapping"] == {"country": {"United States": "US", "United Kingdom": "GB", "Germany": "DE"}}
    finding = r.skew["findings"][0]
    assert finding["drift_before"]["severity"] == "alert" and finding["drift_after_mapping"]["severity"] == "stable"
    assert r.reasons == ["no feature, score or metric crossed a threshold"]
    md = monitor.report_markdown(r)
    assert "- country: United States → US, United Kingdom → GB, Germany → DE" in md
    p = r.skew_payload("churn")
    assert (p["model"], p["as_of"], p["features"]) == ("churn", END.isoformat(), ["country"])
    assert p["mapping"] == r.skew["mapping"]


def test_rename_on_top_of_a_real_shift_still_alerts(tiny_contract: Contract) -> None:
    r = _evaluate(tiny_contract, _frame(country=["United States"]))  # renamed, and everyone is US now
    assert (r.level, r.features, r.skew, r.skew_payload("churn")) == ("alert", ["country"], None, None)


# -- payload ----------------------------------------------------------------------------------


def test_event_and_payload() -> None:
    r = _result("alert", {**ALERT, **WARN})
    r.reasons = ["key feature 'sessions_per_week' at alert"]
    assert r.event == "driftline.drift.alert" and _result("stable", {}).event is None
    p = r.payload("churn")
    assert p["features"] == ["sessions_per_week", "tenure_days"] and p["details"]["tenure_days"]["psi"] == 0.12
    assert (p["model"], p["champion_version"], p["as_of"], p["n_rows"]) == ("churn", "4", END.isoformat(), 1234)
    assert (p["level"], p["reasons"], p["skew"]) == ("alert", ["key feature 'sessions_per_week' at alert"], None)
    assert {"window_start", "window_end"} <= set(p)
    assert _result("warn", WARN).payload("churn")["features"] == ["tenure_days"]


# -- debounce: one alert per episode ---------------------------------------------------------


def test_one_alert_per_episode_whatever_features_alert(tmp_path) -> None:
    """A drift that persists a week, with other features alerting each day: one alert."""
    days = [{"sessions_per_week": _flag("alert", key=True)}, {"country": _flag("alert", key=True)}]
    days += [{f"f{k}": _flag("warn") for k in range(d, d + 3)} for d in range(5)]  # 3 at warn, a new set each day
    sent = []
    for d, flagged in enumerate(days):
        r = _result("alert", flagged, end=END + pd.Timedelta(days=d))
        if monitor.should_emit(r, monitor.load_alert_state(tmp_path), cooldown_hours=7 * 24):
            monitor.record_alert(tmp_path, r)
            sent.append(d)
    assert sent == [0]
    later = _result("alert", ALERT, end=END + pd.Timedelta(days=7))
    assert monitor.should_emit(later, monitor.load_alert_state(tmp_path), 7 * 24)  # the cool-down is over


def test_a_new_champion_starts_a_new_episode(tmp_path) -> None:
    monitor.record_alert(tmp_path, _result("alert", ALERT, version="4"))
    state = monitor.load_alert_state(tmp_path)
    assert state == {"4": {"first_alert": END.isoformat(), "features": ["sessions_per_week"]}}
    soon = END + pd.Timedelta(hours=2)
    assert not monitor.should_emit(_result("alert", ALERT, version="4", end=soon), state, 24)
    assert monitor.should_emit(_result("alert", ALERT, version="5", end=soon), state, 24)
    monitor.record_alert(tmp_path, _result("alert", ALERT, version="5", end=soon))
    assert set(monitor.load_alert_state(tmp_path)) == {"5"}  # the old champion's episode ended with it


def test_warnings_are_not_debounced_stable_emits_nothing() -> None:
    open_episode = {"4": {"first_alert": END.isoformat(), "features": []}}
    assert monitor.should_emit(_result("warn", WARN), open_episode, 24)
    assert not monitor.should_emit(_result("stable", {}), {}, 24)
    assert not monitor.should_emit(_result("insufficient_data", {}), {}, 24)


def test_old_format_state_file_is_read_and_migrated(tmp_path) -> None:
    (tmp_path / "monitor").mkdir()
    old = {"sessions_per_week": (END - pd.Timedelta(hours=5)).isoformat(), "country": END.isoformat()}
    (tmp_path / "monitor" / "alerts.json").write_text(json.dumps(old))
    state = monitor.load_alert_state(tmp_path)
    assert state == {monitor.LEGACY: {"first_alert": END.isoformat(), "features": ["country", "sessions_per_week"]}}
    soon = END + pd.Timedelta(hours=2)
    assert not monitor.should_emit(_result("alert", WARN, version="7", end=soon), state, 24)
    later = END + pd.Timedelta(hours=24)
    assert monitor.should_emit(_result("alert", WARN, version="7", end=later), state, 24)
    monitor.record_alert(tmp_path, _result("alert", WARN, version="7", end=later))
    data = json.loads((tmp_path / "monitor" / "alerts.json").read_text())
    assert data == {"format": 2, "episodes": {"7": {"first_alert": later.isoformat(), "features": ["tenure_days"]}}}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"episodes": {"4": {"first_alert": "soon"}}}'])
def test_broken_state_file_counts_as_no_alerts(tmp_path, text: str) -> None:
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "alerts.json").write_text(text)
    assert monitor.load_alert_state(tmp_path) == {}


def test_state_write_is_atomic(tmp_path, monkeypatch) -> None:
    monitor.record_alert(tmp_path, _result("alert", ALERT))
    before = (tmp_path / "monitor" / "alerts.json").read_text()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(monitor.json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        monitor.record_alert(tmp_path, _result("alert", ALERT, version="5"))
    assert (tmp_path / "monitor" / "alerts.json").read_text() == before
    assert [p.name for p in (tmp_path / "monitor").iterdir()] == ["alerts.json"]  # no temp file left


def test_report_markdown() -> None:
    r = _result("alert", ALERT)
    r.reasons = ["key feature 'sessions_per_week' at alert"]
    md = monitor.report_markdown(r, "/x/drift.html")
    assert md.startswith("# Drift monitor: alert")
    assert "- key feature 'sessions_per_week' at alert\n" in md
    assert "| sessions_per_week | 0.5000 | 0.1000 | 0.2500 | alert |" in md and "`/x/drift.html`" in md


def test_monitors_on_two_hosts_share_the_episode_through_the_store(tmp_path, tiny_contract) -> None:
    """Different homes (two workers' working directories), one store: one alert per episode."""
    from driftline.store import Store

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    hosts = [
        (tmp_path / "host-a", Store(url, tiny_contract).create()),
        (tmp_path / "host-b", Store(url, tiny_contract)),
    ]
    (tmp_path / "host-a" / "monitor").mkdir(parents=True)  # a file from an earlier version is superseded
    (tmp_path / "host-a" / "monitor" / "alerts.json").write_text("{}")
    sent = []
    for d in range(4):
        home, store = hosts[d % 2]
        r = _result("alert", ALERT, end=END + pd.Timedelta(days=d))
        if monitor.should_emit(r, monitor.load_alert_state(home, store, "m"), cooldown_hours=7 * 24):
            monitor.record_alert(home, r, store, "m")
            sent.append(d)
    assert sent == [0]
    assert not (tmp_path / "host-b" / "monitor").exists()  # nothing host-local was written
    assert monitor.load_alert_state(tmp_path / "elsewhere", hosts[1][1], "other-model") == {}
