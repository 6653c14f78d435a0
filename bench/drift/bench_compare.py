"""Drift engine speed and memory against Evidently 0.7, NannyML 0.13 and a plain numpy pass.

Data: 1M reference and 1M current rows x 20 features (14 numeric, 6 categorical with 10-50
values, 6 drifted), seeded (bench/drift/data.py), written to Parquet under .bench-data/drift.
In one run it times, on the same files:

- driftline ``compare`` from a stored profile (PSI + KL + JS + test + band for all 20 features);
- the floor: one numpy/pandas pass over the same current columns (a NaN count per numeric
  column, ``pd.factorize`` per categorical column) - nothing that reads every value is faster;
- a plain numpy PSI pass as the issue describes it (np.quantile of the reference, np.histogram
  of both, value_counts for categoricals) - the simplest hand-written alternative;
- Evidently 0.7 ``ValueDrift(method="psi")`` for all 20 columns and NannyML 0.13
  ``UnivariateDriftCalculator`` (Jensen-Shannon, one chunk), each in its own venv (bench/drift/peers.py);
- peak memory of compare over the loaded frame (VmHWM reset after loading), in a subprocess;
- optionally (``--stream-rows 20000000``) compare_parquet over a big Parquet file in chunks,
  under ``/usr/bin/time -v`` for its peak RSS.

    .venv/bin/python bench/drift/bench_compare.py                         # 1M rows, peers, memory
    .venv/bin/python bench/drift/bench_compare.py --stream-rows 20000000  # plus the 20M streaming run
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data as bdata
import peers

from driftline.drift import Profile, compare, compare_parquet, fit_profile
from driftline.settings import DriftSettings


def floor_pass(frame: pd.DataFrame) -> int:
    """Read every value once: NaN count per numeric column, one hash pass per categorical one."""
    total = 0
    for c in bdata.NUMERIC:
        x = frame[c].to_numpy()
        total += int(np.count_nonzero(x == x))
    for c in bdata.CATEGORICAL:
        codes, _ = pd.factorize(frame[c])
        total += int(codes.max())
    return total


def numpy_psi_pass(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, float]:
    """The plain hand-written PSI: quantile edges, histograms, value_counts, 1e-4 smoothing."""
    out = {}
    for c in bdata.NUMERIC:
        r = ref[c].to_numpy()
        k = cur[c].to_numpy()
        r, k = r[~np.isnan(r)], k[~np.isnan(k)]
        edges = np.unique(np.quantile(r, np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        p = np.histogram(r, edges)[0] / r.size
        q = np.histogram(k, edges)[0] / k.size
        p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
        out[c] = float(np.sum((q - p) * np.log(q / p)))
    for c in bdata.CATEGORICAL:
        p = ref[c].value_counts(normalize=True)
        q = cur[c].value_counts(normalize=True)
        idx = p.index.union(q.index)
        p = p.reindex(idx, fill_value=0).to_numpy()
        q = q.reindex(idx, fill_value=0).to_numpy()
        p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
        out[c] = float(np.sum((q - p) * np.log(q / p)))
    return out


def best(xs: list[float]) -> float:
    return min(xs)


def measure_memory(profile_path: Path, cur_path: Path) -> dict:
    """Run in a subprocess: frame size, RSS before compare and the peak during it."""
    frame = pd.read_parquet(cur_path)
    profile = Profile.load(profile_path)
    settings = DriftSettings()
    compare(profile, frame.head(1000), settings)  # warm up imports and caches
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS

    def status(key: str) -> int:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]

    before = status("VmRSS")
    compare(profile, frame, settings)
    peak = status("VmHWM")
    # RSS can hide allocations that reuse memory freed after loading, so also count what compare
    # allocates itself: Python/numpy objects via tracemalloc, Arrow buffers via the pool's peak.
    import tracemalloc

    import pyarrow as pa

    pool = pa.system_memory_pool()  # unused so far: its max_memory() is compare's Arrow peak alone
    pa.set_memory_pool(pool)
    tracemalloc.start()
    compare(profile, frame, settings)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    arrow_peak = pool.max_memory()
    return {
        "frame_bytes": int(frame.memory_usage(deep=True).sum()),
        "rss_before": before,
        "rss_peak": peak,
        "extra": max(peak - before, traced_peak + arrow_peak),
        "rss_extra": peak - before,
        "traced_peak": traced_peak,
        "arrow_peak": arrow_peak,
    }


def stream(profile_path: Path, path: Path, batch_size: int) -> dict:
    profile = Profile.load(profile_path)
    t0 = time.perf_counter()
    report = compare_parquet(profile, path, DriftSettings(), batch_size=batch_size)
    return {
        "rows": report.n_current,
        "seconds": time.perf_counter() - t0,
        "alerts": [n for n, f in report.features.items() if f.severity == "alert"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=bdata.DATA_DIR)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--stream-rows", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=262_144)
    ap.add_argument("--measure-memory", nargs=2, type=Path, metavar=("PROFILE", "CURRENT"), help=argparse.SUPPRESS)
    ap.add_argument("--stream", nargs=2, type=Path, metavar=("PROFILE", "PARQUET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_memory:
        print(json.dumps(measure_memory(*args.measure_memory)))
        return
    if args.stream:
        print(json.dumps(stream(*args.stream, args.batch_size)))
        return

    d = args.data_dir
    ref_path, cur_path = d / f"ref_{args.rows}.parquet", d / f"cur_{args.rows}.parquet"
    if not ref_path.exists() or not cur_path.exists():
        print(f"writing {args.rows:,}-row reference and current windows to {d}", file=sys.stderr)
        bdata.write(bdata.generate(args.rows, args.seed, drifted=False), ref_path)
        bdata.write(bdata.generate(args.rows, args.seed + 1, drifted=True), cur_path)
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    settings = DriftSettings()
    con = bdata.contract()

    t0 = time.perf_counter()
    profile = fit_profile(ref, con, settings)
    fit_s = time.perf_counter() - t0
    profile_path = profile.save(d / "profile.json")
    t0 = time.perf_counter()
    profile = Profile.load(profile_path)
    load_s = time.perf_counter() - t0

    ours, floor, plain = [], [], []
    report = None
    for _ in range(args.repeat):  # interleaved, so machine noise hits all three alike
        t0 = time.perf_counter()
        report = compare(profile, cur, settings)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        floor_pass(cur)
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_psi = numpy_psi_pass(ref, cur)
        plain.append(time.perf_counter() - t0)
    assert report is not None
    flagged = {n: f.severity for n, f in report.features.items() if f.severity != "stable"}

    print(f"rows: {len(cur):,} current, {len(ref):,} reference; 20 features (14 numeric, 6 categorical)")
    print(f"driftline fit_profile (once per model version): {fit_s:.3f} s; Profile.load: {load_s * 1000:.1f} ms")
    runs = ", ".join(f"{x:.3f}" for x in ours)
    b_ours, b_floor, b_plain = best(ours), best(floor), best(plain)
    print(f"driftline compare (PSI+KL+JS+test+band, 20 features): best {b_ours:.3f} s  (runs {runs})")
    print(f"floor (one pass over the same columns): best {b_floor:.3f} s  -> compare / floor = {b_ours / b_floor:.2f}x")
    print(
        f"plain numpy PSI pass (quantile+histogram+value_counts): best {b_plain:.3f} s"
        f"  -> {b_plain / b_ours:.1f}x slower than compare"
    )
    print(f"flagged: {flagged}")
    agree = max(abs(plain_psi[c] - report.features[c].psi) for c in bdata.NUMERIC[4:])
    print(
        f"(undrifted numeric features: |plain PSI - driftline PSI| <= {agree:.2e}; binning conventions differ slightly)"
    )

    results: dict = {"rows": len(cur), "compare": ours, "floor": floor, "plain": plain, "fit": fit_s}
    if not args.no_peers:
        ev = peers.run_peer("evidently", ref_path, cur_path, bdata.NUMERIC, bdata.CATEGORICAL, args.repeat)
        nm = peers.run_peer("nannyml", ref_path, cur_path, bdata.NUMERIC, bdata.CATEGORICAL, args.repeat)
        if ev:
            results["evidently"] = ev
            print(
                f"Evidently {ev['version']} (pandas {ev['pandas']}) ValueDrift(method='psi') x20: "
                f"best {best(ev['run']):.3f} s (+ Dataset.from_pandas {best(ev['dataset']):.3f} s)"
                f" -> driftline is {best(ev['run']) / best(ours):.1f}x faster"
            )
        else:
            print("Evidently: could not be installed or run here (see stderr)")
        if nm:
            results["nannyml"] = nm
            print(
                f"NannyML {nm['version']} (pandas {nm['pandas']}) univariate JS, calculate: "
                f"best {best(nm['calculate']):.3f} s (fit {best(nm['fit']):.3f} s)"
                f" -> driftline is {best(nm['calculate']) / best(ours):.1f}x faster"
                f" ({(best(nm['calculate']) + best(nm['fit'])) / best(ours):.1f}x vs fit+calculate)"
            )
            js_gap = {c: round(nm["values"][c] - report.features[c].js, 4) for c in bdata.DRIFTED}
            print(f"  NannyML JS minus driftline JS on drifted features (different binning): {js_gap}")
        else:
            print("NannyML: could not be installed or run here (see stderr)")

    mem = subprocess.run(
        [sys.executable, __file__, "--measure-memory", str(profile_path), str(cur_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    m = json.loads(mem.stdout)
    results["memory"] = m
    print(
        f"memory: frame {m['frame_bytes'] / 2**20:.0f} MiB; compare's peak above the loaded frame "
        f"(max of RSS growth {m['rss_extra'] / 2**20:.0f} MiB and tracemalloc {m['traced_peak'] / 2**20:.0f} MiB"
        f" + Arrow pool {m['arrow_peak'] / 2**20:.0f} MiB) "
        f"{m['extra'] / 2**20:.0f} MiB -> peak = {(m['frame_bytes'] + m['extra']) / m['frame_bytes']:.2f}x the frame"
    )

    if args.stream_rows:
        big = d / f"big_{args.stream_rows}.parquet"
        if not big.exists():
            print(f"writing {args.stream_rows:,}-row Parquet to {big}", file=sys.stderr)
            bdata.write_big(big, args.stream_rows, args.seed + 100)
        proc = subprocess.run(
            [
                "/usr/bin/time",
                "-v",
                sys.executable,
                __file__,
                "--stream",
                str(profile_path),
                str(big),
                "--batch-size",
                str(args.batch_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        s = json.loads(proc.stdout.strip().splitlines()[-1])
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) * 1024  # type: ignore[union-attr]
        results["stream"] = {**s, "max_rss": rss, "file_bytes": big.stat().st_size}
        print(
            f"streaming: {s['rows']:,} rows from {big.stat().st_size / 2**30:.2f} GiB Parquet in {s['seconds']:.1f} s "
            f"({s['rows'] / s['seconds'] / 1e6:.1f} M rows/s), batch {args.batch_size:,}; "
            f"peak RSS {rss / 2**20:.0f} MiB (/usr/bin/time -v); alerts: {s['alerts']}"
        )
    (d / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
