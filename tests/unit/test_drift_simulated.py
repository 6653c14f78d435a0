"""Drift engine on simulated churn traffic: few false alarms on stable data, the shift is found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.drift import compare, fit_profile
from driftline.settings import DriftSettings
from driftline.simulate import simulate

START = pd.Timestamp("2026-01-05")


def weeks(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["event_time"] - START) // pd.Timedelta(days=7)).to_numpy()


def false_alarm_rates(n_rows: int, windows: int, seed: int = 3) -> dict[str, float]:
    """Share of unchanged windows with a feature at alert / at warn or above / a retrain decision."""
    s = DriftSettings()
    sim = simulate(weeks=6, users=40_000, scenarios="stable", seed=seed)
    t = sim.traffic
    wk = weeks(t)
    profile = fit_profile(t[wk < 4], sim.contract, s)
    pool = t[wk >= 4].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    alert = warn = retrain = 0
    for _ in range(windows):
        window = pool.iloc[rng.choice(len(pool), n_rows, replace=False)]
        r = compare(profile, window, s)
        sev = {f.severity for f in r.features.values()}
        alert += "alert" in sev
        warn += bool(sev & {"warn", "alert"})
        retrain += r.decision.action == "retrain"
    return {"alert": alert / windows, "warn": warn / windows, "retrain": retrain / windows}


@pytest.mark.slow
@pytest.mark.parametrize(("n_rows", "windows"), [(100, 120), (1_000, 60), (10_000, 20)])
def test_stable_traffic_rarely_alerts(n_rows: int, windows: int) -> None:
    rates = false_alarm_rates(n_rows, windows)
    assert rates["alert"] <= 0.05, rates
    assert rates["retrain"] <= 0.05, rates


@pytest.mark.parametrize(("shift_size", "expected"), [(0.5, "alert"), (0.3, "warn")])
def test_covariate_shift_flags_only_sessions_in_first_full_week(shift_size: float, expected: str) -> None:
    s = DriftSettings()
    sim = simulate(weeks=7, users=5_000, scenarios="covariate_shift", seed=2, shift_week=5, shift_size=shift_size)
    t = sim.traffic
    wk = weeks(t)
    profile = fit_profile(t[wk < 4], sim.contract, s)
    before = compare(profile, t[wk == 4], s)
    assert {f.severity for f in before.features.values()} == {"stable"}
    after = compare(profile, t[wk == 5], s)  # first full week after the shift
    flagged = {n: f.severity for n, f in after.features.items() if f.severity != "stable"}
    assert flagged == {"sessions_per_week": expected}
    assert after.decision.action == ("retrain" if expected == "alert" else "investigate")
    assert "sessions_per_week" in after.decision.reasons[0]
