"""Rollout figures: what shadow scoring adds to the gateway's latency, and how fast a revert reaches traffic.

Same world as ``bench_serve.py`` (champion v1, v2 another seed), one ``driftline serve --workers W
--poll-seconds P`` on a loopback port, the same open-loop client. Then:

* ``shadow``  champion-only and shadow-on (a rollout of v2 in its shadow phase, every request
              shadow-scored) alternate, ``--pairs`` times each, ``rate × --seconds`` one-record
              requests per run at ``--rate`` req/s; p50/p99 per run and the median of each side.
              Shadow rows are counted in the store's ``rollout_scores`` afterwards.
* ``revert``  the rollout is moved to a canary share (``--share``) and, once challenger answers
              are seen, reverted through ``RolloutRunner`` (the path a guardrail breach takes:
              share to 0, then the challenger alias cleared) while the client keeps sending; the
              time from the revert call to the last answer served by the challenger is what a
              breach costs on top of the decision interval.

    .venv/bin/python bench/serve/bench_rollout.py [--workers 2] [--rate 200] [--seconds 10] [--pairs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serve as bs


def shadow_rows(w: bs.World) -> int:
    with sqlite3.connect(bs.store_path(w)) as con:
        return int(con.execute("SELECT COUNT(*) FROM rollout_scores WHERE variant = 'shadow'").fetchone()[0])


def runner_for(w: bs.World) -> Any:
    from driftline.rollout import RolloutRunner
    from driftline.store import Store

    return RolloutRunner(w.reg, Store.from_settings(w.settings, w.contract), w.contract, w.settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--share", type=float, default=25.0, help="canary share before the revert, percent")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for k in bs._THREADS:
        os.environ[k] = "1"
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    for k in [k for k in os.environ if k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING"))]:
        del os.environ[k]
    t_start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    try:
        bs.say(f"world in {root} ({os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}) ...")
        w = bs.build_world(root)
        srv = bs.start_gateway(w, args.workers)
        runner = runner_for(w)
        n = int(args.rate * args.seconds)
        runs: dict[str, list[bs.Run]] = {"off": [], "on": []}
        try:
            bs.load(srv, "/predict", bs.gateway_bodies(w, "warm"), bs.WARMUP, bs.WARMUP_RATE, "warm-up")
            for k in range(args.pairs):
                for side in ("off", "on"):
                    if side == "on":
                        runner.start(w.v2, actor="bench", reason="bench: shadow on")
                        time.sleep(3)  # every worker polls the rollout row every second
                    label = f"shadow {side} #{k + 1}"
                    runs[side].append(bs.load(srv, "/predict", bs.gateway_bodies(w, f"{side}{k}"), n, args.rate, label))
                    if side == "on":
                        time.sleep(2)
                        runner.abort(actor="bench", reason="bench: shadow off")
                        time.sleep(3)
            shadowed = shadow_rows(w)
            # -- revert under traffic
            r = runner.start(w.v2, actor="bench", reason="bench: canary")
            runner.rollouts.update(r, phase="canary", step=0, share=args.share)
            time.sleep(3)
            reverted: dict[str, float] = {}

            def revert() -> None:
                reverted["t"] = time.monotonic()
                runner.abort(actor="bench", reason="bench: guardrail breach")
                reverted["applied"] = time.monotonic()

            revert_run = bs.load(
                srv, "/predict", bs.gateway_bodies(w, "revert"), 100 * 12, 100, "revert", keep_versions=True,
                at_half=revert,
            )  # fmt: skip
        finally:
            code = srv.stop()
        bs.say(f"gateway stopped (exit {code})")
        served = [t for t, v in revert_run.versions if v == w.v2]
        before = [t for t in served if t < reverted["t"]]
        last = max(served) - reverted["t"] if served else float("nan")
        p99 = {side: [x.p(99) for x in rs] for side, rs in runs.items()}
        p50 = {side: [x.p(50) for x in rs] for side, rs in runs.items()}
        errors = sum(x.errors for rs in runs.values() for x in rs) + revert_run.errors
        bs.say("")
        bs.say(f"load average now {os.getloadavg()[0]:.1f}; whole bench {time.monotonic() - t_start:.0f} s")
        bs.say("| run | req/s | requests | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
        for side in ("off", "on"):
            for x in runs[side]:
                bs.say(f"| {x.label} | {x.achieved:.0f} | {x.sent} | {x.p(50):.1f} | {x.p(99):.1f} |")
        m_off, m_on = statistics.median(p99["off"]), statistics.median(p99["on"])
        bs.say(
            f"\nmedian p99: champion only {m_off:.1f} ms, shadow on {m_on:.1f} ms, added {m_on - m_off:+.1f} ms; "
            f"median p50 {statistics.median(p50['off']):.1f} -> {statistics.median(p50['on']):.1f} ms"
        )
        bs.say(f"shadow rows stored: {shadowed:,} of {args.pairs * n:,} shadow-on requests; errors {errors}")
        bs.say(
            f"revert at {args.share:g}%: {len(before)} challenger answers before it; the revert call took "
            f"{reverted['applied'] - reverted['t']:.2f} s; last challenger answer {last:.2f} s after the call "
            f"(gateway polls every 1 s)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
