"""Validation (GX) and skew on 1M rows, against pandas-only checks of the same rules, in one run.

Validation: a 1,000,000-row × 20-column batch (request id, entity id, timestamp, 10 numeric,
5 categorical, 2 boolean features) through ``validate_frame`` — suite build, ephemeral GX
context, data source, asset, batch definition, ValidationDefinition, Checkpoint, COMPLETE
result format, summary — against the same rules written directly in pandas (same per-row
failure indices). Run once clean and once with 1% of rows broken.

Skew: ``skew_check`` with 1M training rows against 1M serving rows (simulated churn traffic with
the ``country_names`` scenario and a ×100 unit change on one feature), once for the following
weeks (no shared events) and once for the same events (entity + time join of 1M × 1M); the
floor is the pandas work any such check must do (value counts, quantiles, the join).

    .venv/bin/python bench/bench_validate.py            # 3 repeats, interleaved
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from driftline.contract import Contract, parse_contract

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def make_batch(n: int, seed: int) -> tuple[pd.DataFrame, Contract]:
    rng = np.random.default_rng(seed)
    feats: dict[str, dict] = {}
    cols: dict[str, object] = {
        "request_id": pd.Series(np.char.add("r", np.arange(n).astype("U9")), dtype="str"),
        "user_id": pd.Series(np.char.add("u", rng.integers(0, 100_000, n).astype("U6")), dtype="str"),
        "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
    }
    for j in range(10):
        feats[f"num{j}"] = {"type": "numeric", "range": [0, 10_000], "nullable": j % 3 == 0}
        cols[f"num{j}"] = rng.gamma(2.0, 50.0 * (j + 1), n).clip(0, 10_000)
    vocab = ["a", "b", "c", "d", "e"]
    for j in range(5):
        feats[f"cat{j}"] = {"type": "categorical", "vocabulary": vocab, "closed": j < 3}
        cols[f"cat{j}"] = pd.Series(np.asarray(vocab)[rng.integers(0, 5, n)], dtype="str")
    for j in range(2):
        feats[f"flag{j}"] = {"type": "boolean"}
        cols[f"flag{j}"] = rng.random(n) < 0.5
    contract = parse_contract(
        {"name": "bench", "entity_id": "user_id", "timestamp": "event_time", "target": {"name": "y"}, "features": feats}
    )
    return pd.DataFrame(cols), contract


def break_rows(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Break ``share`` of the rows: out-of-range numbers, unknown categories, nulls, duplicate ids."""
    rng = np.random.default_rng(seed)
    f = frame.copy()
    n = len(f)
    k = int(n * share) // 4
    idx = rng.choice(n, 4 * k, replace=False)
    a, b, c, d = np.split(idx, 4)
    f.loc[a, "num1"] = -1.0
    f.loc[b, "cat0"] = "zzz"
    f.loc[c, "num2"] = np.nan
    f.loc[d, "request_id"] = f.loc[(d + 1) % n, "request_id"].to_numpy()
    return f


def pandas_check(frame: pd.DataFrame, contract: Contract, min_rows: int, profile_q: dict | None) -> dict:
    """The suite's rules in plain pandas: verdict and failing row positions per rule."""
    out: dict[str, object] = {"row_count": len(frame) >= min_rows}
    for col in contract.row_columns:
        out[f"exist:{col}"] = col in frame.columns
    rid = frame[contract.request_id]
    out["notnull:rid"] = np.flatnonzero(rid.isna().to_numpy())
    out["unique:rid"] = np.flatnonzero(rid.duplicated(keep=False).to_numpy())
    out["notnull:entity"] = np.flatnonzero(frame[contract.entity_id].isna().to_numpy())
    ts = frame[contract.timestamp]
    out["notnull:ts"] = np.flatnonzero(ts.isna().to_numpy())
    out["type:ts"] = pd.api.types.is_datetime64_dtype(ts)
    for name, f in contract.features.items():
        s = frame[name]
        if f.type == "numeric":
            out[f"type:{name}"] = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        elif f.type == "boolean":
            out[f"type:{name}"] = pd.api.types.is_bool_dtype(s)
        else:
            out[f"type:{name}"] = pd.api.types.is_string_dtype(s)
        if not f.nullable:
            out[f"notnull:{name}"] = np.flatnonzero(s.isna().to_numpy())
        if f.type == "numeric" and f.range is not None:
            lo, hi = f.range
            out[f"between:{name}"] = np.flatnonzero(((s < lo) | (s > hi)).to_numpy())
        if f.type == "categorical" and f.closed:
            out[f"in_set:{name}"] = np.flatnonzero((~s.isin(f.vocabulary) & s.notna()).to_numpy())
        if profile_q is not None and name in profile_q:
            probs, ranges = profile_q[name]
            q = s.quantile(probs, interpolation="nearest").to_numpy()
            out[f"quantiles:{name}"] = bool(np.all((q >= ranges[:, 0]) & (q <= ranges[:, 1])))
    return out


def profile_ranges(suite) -> dict:
    ranges = {}
    for e in suite.expectations:
        if e.expectation_type == "expect_column_quantiles_near_reference":
            kw = e.configuration.kwargs
            qr = kw["quantile_ranges"]
            ranges[kw["column"]] = (qr["quantiles"], np.asarray(qr["value_ranges"], dtype=float))
    return ranges


def skew_floor(training: pd.DataFrame, serving: pd.DataFrame, contract: Contract) -> int:
    """The pandas work a skew check cannot avoid: value counts, quantiles, the entity+time join."""
    probs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    for name, f in contract.features.items():
        if f.type == "categorical":
            training[name].value_counts()
            serving[name].value_counts()
        elif f.type == "numeric":
            training[name].quantile(probs)
            serving[name].quantile(probs)
    keys = [contract.entity_id, contract.timestamp]
    return len(serving[keys].merge(training[keys], on=keys, how="inner"))


def report(rows: list[tuple[str, list[float], list[float] | None]]) -> None:
    print(f"\n{'what':72s} {'median s':>9s} {'min s':>7s} {'× peer':>7s}")
    for what, times, peer in rows:
        med = statistics.median(times)
        ratio = f"{med / statistics.median(peer):7.1f}" if peer else ""
        print(f"{what:72s} {med:9.3f} {min(times):7.3f} {ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t_import, _ = timed(lambda: __import__("great_expectations"))
    from driftline.drift.profile import fit_profile
    from driftline.settings import DriftSettings
    from driftline.simulate import simulate
    from driftline.validation import build_suite, skew_check, validate_frame

    batch, contract = make_batch(args.rows, args.seed)
    broken = break_rows(batch, 0.01, args.seed + 1)
    profile = fit_profile(make_batch(200_000, args.seed + 2)[0], contract, DriftSettings())
    n_plain = len(build_suite(contract).expectations)
    n_prof = len(build_suite(contract, profile).expectations)
    ranges = profile_ranges(build_suite(contract, profile))
    t_warm, _ = timed(lambda: validate_frame(batch.head(1000), contract))  # first GX context in the process
    print(f"GX import {t_import:.2f} s; first validate_frame (1,000 rows, context warm-up) {t_warm:.2f} s")
    print(f"batch {batch.shape[0]:,} rows x {batch.shape[1]} columns; suites: {n_plain} and {n_prof} expectations")

    keys = ["gx_plain", "pd_plain", "gx_prof", "pd_prof", "gx_broken", "pd_broken", "gx_mask"]
    times: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(args.repeats):
        t, r = timed(lambda: validate_frame(batch, contract))
        assert r.success, r.batch_error
        times["gx_plain"].append(t)
        times["pd_plain"].append(timed(lambda: pandas_check(batch, contract, 1, None))[0])
        t, r = timed(lambda: validate_frame(batch, contract, profile))
        assert r.success
        times["gx_prof"].append(t)
        times["pd_prof"].append(timed(lambda: pandas_check(batch, contract, 1, ranges))[0])
        t, rb = timed(lambda: validate_frame(broken, contract))
        times["gx_broken"].append(t)
        times["pd_broken"].append(timed(lambda: pandas_check(broken, contract, 1, None))[0])
        t, mask = timed(rb.failed_row_mask)
        times["gx_mask"].append(t)
    print(f"broken batch: {int(mask.notna().sum()):,} rows marked; failed: {[e.label for e in rb.failed]}")
    report(
        [
            (
                f"validate_frame, contract suite ({n_plain} expectations), incl. suite build",
                times["gx_plain"],
                times["pd_plain"],
            ),
            ("pandas-only check of the same rules", times["pd_plain"], None),
            (f"validate_frame, contract + profile suite ({n_prof} expectations)", times["gx_prof"], times["pd_prof"]),
            ("pandas-only check of the same rules (+ quantiles)", times["pd_prof"], None),
            ("validate_frame, 1% of rows broken (COMPLETE unexpected indices)", times["gx_broken"], times["pd_broken"]),
            ("pandas-only check, 1% broken", times["pd_broken"], None),
            ("failed_row_mask() on the broken result", times["gx_mask"], None),
        ]
    )

    # -- skew ---------------------------------------------------------------------------------
    weeks = 20
    users = round(args.rows / (weeks // 2 * 0.85))  # ~rows requests per half (85% weekly activity)
    sim = simulate(weeks=weeks, users=users, scenarios=("country_names",), seed=args.seed, shift_week=weeks // 2)
    traffic = sim.traffic
    week = (traffic["event_time"] - pd.Timestamp("2026-01-05")).dt.days // 7
    training = traffic[week < weeks // 2].reset_index(drop=True)
    serving = traffic[week >= weeks // 2].reset_index(drop=True)
    serving["query_length_mean"] = serving["query_length_mean"] * 100
    same_events = training.copy()
    same_events["country"] = same_events["country"].map(sim.meta["parameters"]["country_names"]["names"])
    print(f"\nskew: training {len(training):,} rows, serving {len(serving):,} rows (next weeks)")
    sk: dict[str, list[float]] = {k: [] for k in ("next", "floor_next", "same", "floor_same")}
    for _ in range(args.repeats):
        t, rep = timed(lambda: skew_check(training, serving, sim.contract))
        sk["next"].append(t)
        sk["floor_next"].append(timed(lambda: skew_floor(training, serving, sim.contract))[0])
        t, rep_same = timed(lambda: skew_check(training, same_events, sim.contract))
        sk["same"].append(t)
        sk["floor_same"].append(timed(lambda: skew_floor(training, same_events, sim.contract))[0])
    print("next weeks:", [(f.kind, f.feature, f.severity, f.factor) for f in rep.findings])
    names = sim.meta["parameters"]["country_names"]["names"]
    (vocab,) = rep.for_feature("country", "vocabulary")
    print(
        "country mapping is the inverse of the simulator's names:",
        vocab.mapping == {names[c]: c for c in names if names[c] in vocab.mapping} and not vocab.unmapped,
    )
    print(
        f"same events: joined {rep_same.joined_rows:,};",
        [(f.kind, f.feature, f.rows_affected) for f in rep_same.findings],
    )
    report(
        [
            (f"skew_check, {len(serving):,} serving rows of the following weeks", sk["next"], sk["floor_next"]),
            ("pandas floor: value counts + quantiles + key join", sk["floor_next"], None),
            (f"skew_check, {len(same_events):,} serving rows of the same events (join)", sk["same"], sk["floor_same"]),
            ("pandas floor, same events", sk["floor_same"], None),
        ]
    )


if __name__ == "__main__":
    main()
