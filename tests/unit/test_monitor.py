"""The drift monitor's pure parts: which event, the payload, debounce, the alert record."""

from __future__ import annotations

import pandas as pd

from driftline import monitor

END = pd.Timestamp("2026-03-10 02:00")


def _result(level: str, flagged: dict) -> monitor.MonitorResult:
    return monitor.MonitorResult(level, END - pd.Timedelta(days=1), END, 1234, flagged, None, "4")


ALERT = {"sessions_per_week": {"psi": 0.5, "severity": "alert", "warn": 0.1, "alert": 0.25, "key": True}}
WARN = {"tenure_days": {"psi": 0.12, "severity": "warn", "warn": 0.1, "alert": 0.25, "key": False}}


def test_event_and_payload():
    r = _result("alert", {**ALERT, **WARN})
    assert r.event == "driftline.drift.alert" and _result("stable", {}).event is None
    p = r.payload("churn")
    assert p["features"] == ["sessions_per_week"] and p["details"]["tenure_days"]["psi"] == 0.12
    assert (p["model"], p["champion_version"], p["as_of"], p["n_rows"]) == ("churn", "4", END.isoformat(), 1234)
    assert _result("warn", WARN).payload("churn")["features"] == ["tenure_days"]


def test_debounce_by_feature_within_the_cooldown(tmp_path):
    r = _result("alert", ALERT)
    assert monitor.should_emit(r, {}, 24)
    monitor.record_alert(tmp_path, r)
    state = monitor.load_alert_state(tmp_path)
    assert state == {"sessions_per_week": END.isoformat()}
    assert not monitor.should_emit(r, state, 24)
    later = monitor.MonitorResult("alert", END, END + pd.Timedelta(hours=24), 10, ALERT, None, "4")
    assert monitor.should_emit(later, state, 24)  # the cool-down is over
    other = _result("alert", {"country": {**ALERT["sessions_per_week"]}})
    assert monitor.should_emit(other, state, 24)  # a new feature alerting gets through
    assert monitor.should_emit(_result("warn", WARN), state, 24) and not monitor.should_emit(
        _result("stable", {}), {}, 24
    )


def test_broken_state_file_counts_as_no_alerts(tmp_path):
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "alerts.json").write_text("{not json")
    assert monitor.load_alert_state(tmp_path) == {}


def test_report_markdown():
    md = monitor.report_markdown(_result("alert", ALERT), "/x/drift.html")
    assert md.startswith("# Drift monitor: alert")
    assert "| sessions_per_week | 0.5000 | 0.1000 | 0.2500 | alert |" in md and "`/x/drift.html`" in md
