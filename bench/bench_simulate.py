"""How long simulating 1M rows of churn traffic takes, against a plain numpy floor.

The floor draws as many uniform columns as the traffic frame has (13) for the same number of
rows with ``numpy.random.default_rng``: nothing can generate those columns faster. Both run in
the same process, interleaved, so the ratio holds on a shared, noisy machine.

    .venv/bin/python bench/bench_simulate.py                 # 10 weeks x 118,000 users ~ 1M rows
    .venv/bin/python bench/bench_simulate.py --quality       # also: AP of an old vs a retrained model
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from driftline.simulate import simulate, write_simulation

SCENARIO_ALL = "covariate_shift,concept_drift,country_names,long_tail"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def numpy_floor(rows: int, columns: int, seed: int) -> np.ndarray:
    """The floor: ``columns`` uniform columns of ``rows`` values, nothing else."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.random(rows) for _ in range(columns)])


def quality(weeks: int, users: int, seed: int) -> None:
    """Average precision (and lift over base rate) of a model trained before concept drift."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score

    k = 3
    print(f"\nconcept drift check: weeks={weeks} users={users} shift_week={k}; test = last week")
    print(f"{'scenario':<14} {'base':>6} {'AP old':>7} {'AP recent':>9}  (old: weeks<{k}; recent: 3 weeks before test)")
    for name in ("stable", "concept_drift"):
        sim = simulate(weeks, users, name, seed=seed, shift_week=k)
        x = sim.traffic.drop(columns=["request_id", "user_id", "event_time"])
        x = x.astype({c: "category" for c in ["country", "plan", "device"]})
        y = sim.outcomes["churned"]
        wk = ((sim.traffic["event_time"] - pd.Timestamp(sim.meta["start"])) // pd.Timedelta(days=7)).to_numpy()
        last = weeks - 1

        models = [
            HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype").fit(x[m], y[m])
            for m in (wk < k, (wk >= last - 3) & (wk < last))
        ]
        test = wk == last
        ap = [average_precision_score(y[test], m.predict_proba(x[test])[:, 1]) for m in models]
        print(f"{name:<14} {y[test].mean():6.3f} {ap[0]:7.3f} {ap[1]:9.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weeks", type=int, default=10)
    p.add_argument("--users", type=int, default=118_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", action="store_true", help="also run the concept-drift AP check")
    a = p.parse_args()

    sim_t: dict[str, list[float]] = {"stable": [], SCENARIO_ALL: []}
    floor_t: list[float] = []
    rows = columns = 0
    for _ in range(a.repeat):
        for scen in sim_t:
            dt, sim = timed(lambda s=scen: simulate(a.weeks, a.users, s, seed=a.seed))
            sim_t[scen].append(dt)
            rows, columns = len(sim.traffic), sim.traffic.shape[1]
            dt, _ = timed(lambda r=rows, c=columns: numpy_floor(r, c, a.seed))
            floor_t.append(dt)
    with tempfile.TemporaryDirectory() as tmp:
        write_t, _ = timed(lambda: write_simulation(sim, tmp))

    floor = statistics.median(floor_t)
    print(f"rows={rows:,} columns={columns} weeks={a.weeks} users={a.users:,} repeat={a.repeat}")
    print(f"{'what':<62} {'median s':>9} {'min s':>7} {'x floor':>8}")
    print(f"{'numpy floor (' + str(columns) + ' uniform columns)':<62} {floor:9.3f} {min(floor_t):7.3f} {1.0:8.1f}")
    for scen, ts in sim_t.items():
        med = statistics.median(ts)
        print(f"{'simulate ' + scen:<62} {med:9.3f} {min(ts):7.3f} {med / floor:8.1f}")
    print(f"{'write_simulation (2 parquet + yaml + json), once':<62} {write_t:9.3f}")
    if a.quality:
        quality(weeks=10, users=20_000, seed=a.seed)


if __name__ == "__main__":
    main()
