"""Replay policy specs, run weeks and the recommendation rule (no data, no MLflow)."""

from __future__ import annotations

import pandas as pd
import pytest

from driftline import replay as rp
from driftline.cli import _common, build_app
from driftline.errors import InputError


def test_policy_specs_parse_into_drift_overrides():
    assert rp.parse_policy("never") == rp.Policy("never", "never", {})
    p = rp.parse_policy("drift:psi_warn=0.15,metric_drop_retrain=0.05")
    assert p.kind == "drift" and p.drift == {"psi_warn": 0.15, "metric_drop_retrain": 0.05}
    assert p.name == "drift:psi_warn=0.15,metric_drop_retrain=0.05"
    assert rp.parse_policy("drift:adaptive_bands=false").drift == {"adaptive_bands": False}
    assert [x.name for x in rp.parse_policies([])] == ["never", "weekly", "drift"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("drift:psi_wrn=0.1", "unknown drift setting 'psi_wrn' (did you mean psi_warn?)"),
        ("sometimes", "unknown policy 'sometimes'"),
        ("weekly:psi_warn=0.1", "only drift takes settings"),
        ("drift:psi_warn", "expected key=value"),
        ("drift:psi_warn=abc", "field psi_warn"),
        ("drift:psi_warn=0.5", "must not exceed psi_alert"),
    ],
)
def test_bad_policy_specs_are_one_line(spec, says):
    with pytest.raises(InputError, match=None) as e:
        rp.parse_policy(spec)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_bad_policy_on_the_command_line_exits_2_with_one_line(capsys):
    code = _common.run(
        build_app(), ["replay", "--from", "2026-02-02", "--to", "2026-03-02", "--policy", "drift:nope=1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown drift setting 'nope'" in err
    code = _common.run(
        build_app(), ["replay", "--from", "2026-02-02", "--to", "2026-03-02", "-p", "weekly", "-p", "weekly"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "given twice" in err


def test_run_times_are_week_starts_at_the_schedule_hour():
    times = rp.run_times("2026-02-04", "2026-02-23")  # a Wednesday to a Monday
    assert times == [
        pd.Timestamp("2026-02-09 03:00"),
        pd.Timestamp("2026-02-16 03:00"),
        pd.Timestamp("2026-02-23 03:00"),
    ]
    assert rp.run_times("2026-02-01", "2026-02-09", "sunday")[0] == pd.Timestamp("2026-02-01 03:00")
    with pytest.raises(InputError, match="fewer than 2 weekly runs"):
        rp.run_times("2026-02-09", "2026-02-10")
    with pytest.raises(InputError, match="before --from"):
        rp.run_times("2026-02-09", "2026-01-10")


def _row(recovery, retrains):
    return {
        "recovery": recovery,
        "retrains": retrains,
        "recovery_per_retrain": recovery / retrains if retrains else None,
    }


def test_recommendation_is_the_best_recovery_per_retrain_above_the_floor():
    rows = {"never": _row(0.0, 0), "weekly": _row(0.98, 15), "drift": _row(0.92, 4), "drift:psi_warn=0.2": _row(0.5, 1)}
    assert rp.recommend(rows, list(rows), 1.0, 0.9)[0] == "drift"
    assert rp.recommend(rows, list(rows), 1.0, 0.0)[0] == "drift:psi_warn=0.2"  # the literal rule
    assert rp.recommend(rows, ["never", "drift:psi_warn=0.2"], 1.0, 0.9)[0] == "drift:psi_warn=0.2"  # best below it
    assert rp.recommend(rows, list(rows), 0.0, 0.9)[0] == "never"  # nothing lost: fewest retrains


def test_snippets_select_the_policy():
    assert "retrain_on_schedule: true" in rp.parse_policy("weekly").yaml_snippet()
    snippet = rp.parse_policy("drift:psi_warn=0.15").yaml_snippet()
    assert "retrain_on_schedule: false" in snippet and "drift:\n  psi_warn: 0.15" in snippet
