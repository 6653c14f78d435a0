"""What ``driftline run`` prints at the end of a run, from the flow's summary (exact lines)."""

from __future__ import annotations

import logging

from driftline.cli.run import TerminalLogHandler, outcome_lines


def _monitor_summary(**extra: object) -> dict:
    details = {
        "score": {"psi": 0.109, "warn": 0.1, "alert": 0.25, "severity": "warn"},
        "country": {"psi": 0.9, "warn": 0.1, "alert": 0.25, "severity": "alert", "explained_by_skew": True},
        "sessions_per_week": {"psi": 0.283, "warn": 0.1, "alert": 0.25, "severity": "alert"},
    }
    return {
        "level": "alert",
        "event": "driftline.drift.alert",
        "skew_event": None,
        "report": "/srv/home/reports/drift-20260223T0200.html",
        "champion_version": "3",
        "window_start": "2026-02-22T02:00:00",
        "window_end": "2026-02-23T02:00:00",
        "n_rows": 1234,
        "features": sorted(details),
        "details": details,
        "reasons": ["key feature 'sessions_per_week' at alert (PSI 0.283 > alert threshold 0.250)"],
        **extra,
    }


def test_monitor_outcome_names_the_alerting_features_and_the_report():
    assert outcome_lines("drift-monitor", "completed", "", _monitor_summary()) == [
        "drift-monitor: completed — alert",
        "  window:   2026-02-22T02:00:00 → 2026-02-23T02:00:00 (1,234 rows), champion 3",
        "  alert     country: PSI 0.900 (warn 0.100, alert 0.250) — explained by serving skew",
        "  alert     sessions_per_week: PSI 0.283 (warn 0.100, alert 0.250)",
        "  warn      score: PSI 0.109 (warn 0.100, alert 0.250)",
        "  reason:   key feature 'sessions_per_week' at alert (PSI 0.283 > alert threshold 0.250)",
        "  event:    driftline.drift.alert",
        "  report:   /srv/home/reports/drift-20260223T0200.html",
    ]


def test_monitor_outcome_says_when_the_cool_down_held_the_alert_back():
    lines = outcome_lines("drift-monitor", "completed", "", _monitor_summary(event=None))
    assert "  event:    none (alert already sent in this episode; cool-down)" in lines


def test_weekly_outcome_has_action_version_reasons_and_report_paths():
    summary = {
        "action": "registered",
        "drift": {"action": "retrain", "trigger": "drift", "reasons": ["average_precision dropped 12.0%"]},
        "registration": {"version": "6", "created": True, "promoted": False, "previous_champion": "5"},
        "gates": {"passed": False, "gates": [{"name": "beat_champion", "passed": False}]},
        "reports": {"drift_report": "/srv/home/reports/churn/version-6-drift.html"},
    }
    assert outcome_lines("refresh-and-retrain", "completed", "registered", summary) == [
        "refresh-and-retrain: completed — registered",
        "  version:  6 (not champion; champion before: 5)",
        "  decision: retrain (trigger drift)",
        "  reason:   average_precision dropped 12.0%",
        "  gates failed: beat_champion",
        "  drift_report: /srv/home/reports/churn/version-6-drift.html",
    ]


def test_blocked_weekly_outcome_lists_what_blocked_it():
    summary = {"action": "blocked", "data_check": {"blocked": True, "reasons": ["skew: vocabulary skew on country"]}}
    assert outcome_lines("refresh-and-retrain", "failed", "data check blocked the run", summary) == [
        "refresh-and-retrain: failed — blocked",
        "  data check blocked the run",
        "  blocked:  skew: vocabulary skew on country",
    ]


def test_terminal_lines_leave_out_tracebacks_and_prefect_state_lines(capsys):
    handler = TerminalLogHandler(level=logging.INFO)
    logger = logging.getLogger("prefect.task_runs.terminal-test")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("Finished in state Completed()")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("Task run failed with exception: ValueError('boom')")
        logger.warning("drift report not written: %s", "disk full\nsecond line")
        logger.info("x" * 500, extra={"task_run_name": "measure-drift"})
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split("  ", 1)[1] for ln in lines] == [
        "prefect.task_runs.terminal-test  warning: drift report not written: disk full",
        "measure-drift  " + "x" * 239 + "…",
    ]
