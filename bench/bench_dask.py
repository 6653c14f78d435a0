"""Counting a 20M-row window kept as partitioned Parquet: one process vs a local 2-worker Dask cluster.

Both sides run the same library calls (``driftline.scale.count_partition`` per partition, then
``merge_counts``) on the same files, in the same run; the merged counts are checked to be equal.
Prints wall times, the ratio, and the peak resident memory (VmHWM, reset once the imports are
done) of the single process and of each Dask worker, next to its RSS before counting.

    .venv/bin/python bench/bench_dask.py                    # 20M rows, 20 partitions
    .venv/bin/python bench/bench_dask.py --rows 2000000     # a quick look
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.contract import parse_contract

CONTRACT = {
    "name": "bench",
    "entity_id": "user_id",
    "timestamp": "event_time",
    "target": {"name": "churned", "positive": 1},
    "segment": "country",
    "features": {
        "country": {"type": "categorical", "key": True},
        "plan": {"type": "categorical"},
        "device": {"type": "categorical"},
        "tenure_days": {"type": "numeric"},
        "sessions_per_week": {"type": "numeric"},
        "days_since_last_login": {"type": "numeric"},
        "support_tickets": {"type": "numeric"},
        "payment_failures": {"type": "numeric"},
        "query_length_mean": {"type": "numeric", "nullable": True},
        "auto_renew": {"type": "boolean"},
    },
}


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """``n`` churn-like rows; ``shift`` moves sessions_per_week (drift to find)."""
    countries = np.array(["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA"])
    q = rng.gamma(2.0, 18.0, n)
    q[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "country": pd.Categorical(countries[rng.choice(8, n, p=[0.3, 0.15, 0.12, 0.1, 0.12, 0.09, 0.07, 0.05])]),
            "plan": pd.Categorical(np.array(["free", "basic", "pro"])[rng.choice(3, n, p=[0.5, 0.3, 0.2])]),
            "device": pd.Categorical(np.array(["desktop", "mobile", "tablet"])[rng.choice(3, n, p=[0.5, 0.4, 0.1])]),
            "tenure_days": rng.exponential(300.0, n),
            "sessions_per_week": rng.gamma(3.0, 2.0 * (1.0 - shift), n),
            "days_since_last_login": rng.exponential(4.0, n),
            "support_tickets": rng.poisson(0.4, n).astype(np.float64),
            "payment_failures": rng.poisson(0.1, n).astype(np.float64),
            "query_length_mean": q,
            "auto_renew": rng.random(n) < 0.6,
        }
    )


def write_window(root: Path, rows: int, partitions: int, seed: int) -> list[str]:
    """The window as ``partitions`` Parquet files of equal size, written once."""
    rng = np.random.default_rng(seed)
    per = rows // partitions
    paths = []
    for i in range(partitions):
        p = root / f"part-{i:03d}.parquet"
        frame(rng, per, shift=0.1).to_parquet(p, index=False, row_group_size=262_144)
        paths.append(str(p))
    return paths


def count_all(profile, paths: list[str]):
    from driftline import scale

    return scale.merge_counts(scale.count_partition(profile, p) for p in paths)


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory figure (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset this process's peak RSS (VmHWM) to its current RSS; returns that RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM")


def _single(profile, paths, out) -> None:
    __import__("driftline.scale")
    base = _reset_peak()
    t = time.perf_counter()
    wc = count_all(profile, paths)
    out.put((time.perf_counter() - t, base, _peak(), wc))


def single_process(profile, paths: list[str]):
    """Wall time, peak RSS and counts of one fresh process counting every partition in turn."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_single, args=(profile, paths, q))
    p.start()
    seconds, base, peak, wc = q.get()
    p.join()
    return seconds, base, peak, wc


def dask_cluster(profile, paths: list[str]):
    """Wall time, peak RSS per worker and counts on a LocalCluster of 2 single-threaded workers."""
    from distributed import Client, LocalCluster

    from driftline import scale

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("driftline.scale"))  # imports paid before the clock starts
        before = client.run(_reset_peak)
        t = time.perf_counter()
        futures = client.map(scale.count_partition, [profile] * len(paths), paths, pure=False)
        wc = scale.merge_counts(client.gather(futures))
        seconds = time.perf_counter() - t
        peaks = client.run(_peak)
    return seconds, before, peaks, wc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--partitions", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from driftline.drift import fit_profile
    from driftline.settings import DriftSettings

    contract = parse_contract(CONTRACT)
    profile = fit_profile(frame(np.random.default_rng(args.seed + 1), 200_000), contract, DriftSettings())
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        t = time.perf_counter()
        paths = write_window(Path(tmp), args.rows, args.partitions, args.seed)
        size = sum(Path(p).stat().st_size for p in paths)
        print(f"window: {args.rows:,} rows in {len(paths)} partitions, {size / 2**20:.0f} MiB on disk "
              f"(written in {time.perf_counter() - t:.1f} s)")  # fmt: skip
        one_s, one_base, one_peak, one_wc = single_process(profile, paths)
        dask_s, dask_before, dask_peaks, dask_wc = dask_cluster(profile, paths)
    same = one_wc.n_rows == dask_wc.n_rows and all(
        np.array_equal(one_wc.features[n].counts, dask_wc.features[n].counts) for n in one_wc.features
    )
    mib = 2**20
    print(
        f"one process:        {one_s:7.2f} s   peak RSS {one_peak / mib:.0f} MiB "
        f"(before counting: {one_base / mib:.0f} MiB)"
    )
    print(f"dask, 2 workers:    {dask_s:7.2f} s   speed-up x{one_s / dask_s:.2f}")
    for addr in sorted(dask_peaks):
        print(f"  worker {addr}: peak RSS {dask_peaks[addr] / 2**20:.0f} MiB (before counting: "
              f"{dask_before[addr] / 2**20:.0f} MiB)")  # fmt: skip
    print(f"rows/s: one process {args.rows / one_s / 1e6:.1f} M, dask {args.rows / dask_s / 1e6:.1f} M")
    print(f"merged counts identical: {same}")
    if not same:
        raise SystemExit("the merged counts differ")


if __name__ == "__main__":
    main()
