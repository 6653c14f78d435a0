"""The weekly flow over a window of ~1M logged rows, and Prefect's share of its time.

Runs the same pipeline (driftline.pipeline.run_week) on identical, separate state with every
step a plain call (no Prefect) and as the Prefect flow (every step a task run), alternating,
``--repeats`` times each. Heavy imports and Prefect's ephemeral server are warmed up first, so
neither side pays one-time costs. Prints the medians and the overhead ratio.

    .venv/bin/python bench/bench_flow.py [--users 118000] [--weeks 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def make_home(root: Path, name: str, template: Path) -> Path:
    """A copy of the filled store with its own MLflow state and settings file."""
    home = root / name
    home.mkdir()
    shutil.copy(template / "store.db", home / "store.db")
    cfg = yaml.safe_load((template / "driftline.yaml").read_text())
    cfg["home"] = str(home)
    (home / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    return home / "driftline.yaml"


def plain(config: Path, as_of: pd.Timestamp) -> dict:
    """The same pipeline as the flow (driftline.pipeline.run_week), every step a plain call."""
    from driftline import pipeline
    from driftline.contract import load_contract
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings
    from driftline.store import Store

    s = load_settings(config)
    s.ensure_home()
    c = load_contract(s.contract)
    ctx = pipeline.Context(s, c, Store.from_settings(s, c).create(), ModelRegistry.from_settings(s), "bench")
    return pipeline.run_week(ctx, as_of, "schedule", False).summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=118_000)
    ap.add_argument("--weeks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from driftline.simulate import simulate
    from driftline.store import Store

    root = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    try:
        template = root / "template"
        template.mkdir()
        sim = simulate(weeks=args.weeks, users=args.users, scenarios="stable", seed=0)
        contract = sim.contract.save(template / "contract.yaml")
        cfg = {
            "home": str(template),
            "contract": str(contract),
            "model_name": "bench",
            "windows": {"train_weeks": 4, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
        }
        (template / "driftline.yaml").write_text(yaml.safe_dump(cfg))
        store = Store(f"sqlite:///{template / 'store.db'}", sim.contract).create()
        store.append_predictions(sim.traffic)
        store.append_outcomes(sim.outcomes)
        store.dispose()
        as_of = pd.Timestamp(sim.meta["start"]) + pd.Timedelta(weeks=args.weeks, hours=3)
        window_rows = len(sim.traffic)
        print(f"logged rows in the store: {window_rows:,}; as_of {as_of}")

        import great_expectations  # noqa: F401  (warm imports: neither side pays them)
        import mlflow  # noqa: F401
        from prefect import flow

        from flows.refresh_and_retrain import refresh_and_retrain

        @flow
        def warm_up() -> int:
            return 1

        t = time.perf_counter()
        warm_up()
        t_start = time.perf_counter() - t
        plain_times, flow_times = [], []
        for i in range(args.repeats):
            cfg_plain = make_home(root, f"plain{i}", template)
            t = time.perf_counter()
            s_plain = plain(cfg_plain, as_of)
            plain_times.append(time.perf_counter() - t)
            cfg_flow = make_home(root, f"flow{i}", template)
            t = time.perf_counter()
            s_flow = refresh_and_retrain(as_of=as_of.to_pydatetime(), config=str(cfg_flow))
            flow_times.append(time.perf_counter() - t)
        t_plain, t_flow = float(np.median(plain_times)), float(np.median(flow_times))
        assert s_plain["action"] == s_flow["action"], (s_plain["action"], s_flow["action"])
        print(f"{'what':52s} {'s':>7s}")
        print(f"{'Prefect ephemeral server start (excluded)':52s} {t_start:7.1f}")
        print(f"{'plain function calls (no Prefect), median':52s} {t_plain:7.1f}  {plain_times}")
        print(f"{'refresh-and-retrain flow (Prefect), median':52s} {t_flow:7.1f}  {flow_times}")
        print(f"Prefect overhead: {(t_flow / t_plain - 1) * 100:+.1f}% (flow/plain = {t_flow / t_plain:.3f})")
        print(f"train rows {s_flow['datasets']['train_rows']:,}, test rows {s_flow['datasets']['test_rows']:,}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
