"""False-alarm rates of the drift engine on simulated stable traffic, and detection of a shift.

Reference: weeks 0-3 of ``simulate(weeks=6, users=60_000, scenarios="stable")``; windows of
100, 1,000 and 10,000 rows drawn without replacement from weeks 4-5 (the weeks a monitor would
look at next). A false alarm is a window with any feature at ``alert``; the script also prints
the share with any feature at ``warn`` or above and the share whose decision is ``retrain``.
With ``--fixed-band`` it repeats the run with ``adaptive_bands=False`` (configured bands
only, no sample-size adjustment) to show what the adjustment buys. Then it checks covariate_shift week by week.

    .venv/bin/python bench/drift/false_alarms.py --fixed-band
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from driftline.drift import compare, fit_profile
from driftline.settings import DriftSettings
from driftline.simulate import simulate

START = pd.Timestamp("2026-01-05")


def week(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["event_time"] - START) // pd.Timedelta(days=7)).to_numpy()


def rates(n_rows: int, windows: int, seed: int, fixed_band: bool) -> dict[str, float]:
    s = DriftSettings(adaptive_bands=not fixed_band)
    sim = simulate(weeks=6, users=60_000, scenarios="stable", seed=seed)
    t = sim.traffic
    wk = week(t)
    profile = fit_profile(t[wk < 4], sim.contract, s)
    pool = t[wk >= 4].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    alert = warn = retrain = 0
    for _ in range(windows):
        r = compare(profile, pool.iloc[rng.choice(len(pool), n_rows, replace=False)], s)
        sev = {f.severity for f in r.features.values()}
        alert += "alert" in sev
        warn += bool(sev & {"warn", "alert"})
        retrain += r.decision.action == "retrain"
    return {"alert": alert / windows, "warn": warn / windows, "retrain": retrain / windows}


def shift_detection(seed: int, shift_size: float) -> None:
    s = DriftSettings()
    sim = simulate(weeks=8, users=20_000, scenarios="covariate_shift", seed=seed, shift_week=5, shift_size=shift_size)
    t = sim.traffic
    wk = week(t)
    profile = fit_profile(t[wk < 4], sim.contract, s)
    for w in range(4, 8):
        r = compare(profile, t[wk == w], s)
        flagged = {n: f"{f.severity} {f.psi:.3f}" for n, f in r.features.items() if f.severity != "stable"}
        print(
            f"  shift_size {shift_size}: week {w} ({(wk == w).sum():,} rows) -> {r.decision.action}; flagged {flagged}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--fixed-band", action="store_true")
    args = ap.parse_args()
    plan = [(100, 500), (1_000, 300), (10_000, 100)]
    for fixed in [False, True] if args.fixed_band else [False]:
        label = "configured bands only" if fixed else "sample-size-aware bands"
        print(f"stable traffic, {label}:")
        for n, k in plan:
            t0 = time.perf_counter()
            r = rates(n, k, args.seed, fixed)
            print(
                f"  {n:>6,} rows x {k} windows: any alert {r['alert']:.1%}, any warn+ {r['warn']:.1%}, "
                f"retrain {r['retrain']:.1%}  ({time.perf_counter() - t0:.1f} s)"
            )
    print("covariate_shift (shift_week 5, reference weeks 0-3):")
    for size in (0.3, 0.5):
        shift_detection(args.seed, size)


if __name__ == "__main__":
    main()
