"""Serving gateway: ``driftline serve`` against ``mlflow models serve`` and the in-process floor.

Builds a throwaway world in a temp folder (simulated churn traffic, SQLite store, SQLite MLflow
tracking DB, two registered HistGradientBoosting versions with different seeds; 1 is champion),
then, one server at a time on free loopback ports:

* ``gateway``  ``driftline serve --workers W --poll-seconds 1``: ``POST /predict`` with one record
               (features + entity id + a unique request id); every answered row is logged to the
               store by the background writer.
* ``peer``     ``mlflow models serve -m models:/NAME/1 --env-manager local -w W`` of the same version:
               ``POST /invocations`` with ``{"dataframe_split": ...}`` of the ten features (what a
               user without driftline would run; no validation, no log).
* ``floor``    in-process, no HTTP, OMP_NUM_THREADS=1: plain ``pipeline.predict_proba`` and
               ``training.score(pipeline, one_row_frame, contract)`` (2,000 one-row calls each), and
               to split the gateway's own cost, the door ``admit(body)`` and the whole
               ``Gateway.predict`` (door + score + enqueue for the log), 300 calls each, and one
               alias poll (what the watcher does every second), 100 calls.
* ``move``     10,000 requests to the gateway, at 90 % of the rate it achieved when overloaded,
               while version 2 is promoted half-way; errors must be 0 and the store's predictions
               table must hold one row per 200 answer (counted with sqlite3 after the drain).

Load comes from this script: an open-loop asyncio client on raw HTTP/1.1 keep-alive connections
(up to 64, reused round-robin) that sends at a fixed rate and times every request from its
*scheduled* send time, so a server that falls behind is charged for its queue (no coordinated
omission). The 20 req/s run sends 300 requests, the 200 and 400 req/s runs ``rate × --seconds``;
every run waits for all its answers, and a server that cannot keep up is reported with the rate it
achieved. The max-throughput search steps the rate up (``--step-seconds`` per step) until the
server achieves < 95 % of the rate, and keeps the highest step with p99 ≤ 50 ms and 0 errors.
Servers and client share the machine's cores; every child runs with OMP/BLAS pinned to one
thread. Each server is warmed up with 300 requests first, and is stopped with SIGTERM (the gateway
drains its log) before the next one starts. ``--workers`` defaults to 2 (one per core) for both.

    .venv/bin/python bench/serve/bench_serve.py [--workers 2] [--seconds 5] [--step-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
NAME = "churn-bench"
LOW_RATE, LOW_REQUESTS = 20, 300  # a rate both servers sustain: latency without a queue
RATES = (200, 400)  # the rates
RAMP = (10, 20, 30, 40, 50, 60, 70, 80, 100, 120, 150, 175, 200, 250, 300, 400, 500, 600)
P99_CEILING_MS = 50.0
TARGET_P99_MS = 15.0  # the target at 200 req/s (for the later shadow-scoring setup)
WARMUP, WARMUP_RATE = 300, 30
CONNS = 64
MOVE_REQUESTS = 10_000
FLOOR_CALLS, FLOOR_SPLIT_CALLS = 2_000, 1_000
_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# -- the world ---------------------------------------------------------------------------------
@dataclass
class World:
    root: Path
    config: Path
    settings: Any
    contract: Any
    reg: Any
    v1: str
    v2: str
    records: list[dict[str, Any]]  # gateway request records (no request id, no event time)
    features: list[str]
    feature_rows: list[list[Any]]  # the same rows, features only, for the peer
    frame: Any  # the traffic rows behind ``records``


def _jsonable(v: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def build_world(root: Path) -> World:
    import yaml

    from driftline import training
    from driftline.registry import ModelRegistry, Verdict
    from driftline.settings import TrainingSettings, load_settings
    from driftline.simulate import simulate

    sim = simulate(weeks=4, users=5_000, seed=7)
    c = sim.contract
    labelled = sim.traffic.merge(sim.outcomes[[c.request_id, c.target.name]], on=c.request_id)
    c.save(root / "contract.yaml")
    data = {
        "home": str(root / "home"),
        "contract": str(root / "contract.yaml"),
        "store_url": f"sqlite:///{root / 'store.db'}",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "model_name": NAME,
    }
    config = root / "driftline.yaml"
    config.write_text(yaml.safe_dump(data))
    s = load_settings(config, **data)
    reg = ModelRegistry.from_settings(s)
    versions = []
    for seed in (1, 2):
        model = training.train(labelled, c, TrainingSettings(seed=seed))
        versions.append(
            reg.register_candidate(
                pipeline=model.pipeline,
                input_example=training.features_frame(labelled.head(3), c),
                params=model.params,
                metrics={},
                tags={"trigger": "manual"},
                artifacts={"contract.yaml": c.to_yaml()},
                verdict=Verdict(gates_passed=True),
                idempotency_key=f"bench-serve-v{seed}",
            ).version
        )
    reg.promote(versions[0], reason="bench", actor="bench")
    frame = sim.traffic.sample(1_000, random_state=3).reset_index(drop=True)
    keep = [n for n in c.row_columns if n not in (c.request_id, c.timestamp)]
    records = [{n: _jsonable(v) for n, v in zip(keep, row, strict=True)} for row in frame[keep].itertuples(index=False)]
    feats = list(c.feature_names)
    feature_rows = [[_jsonable(v) for v in row] for row in frame[feats].itertuples(index=False)]
    return World(root, config, s, c, reg, versions[0], versions[1], records, feats, feature_rows, frame)


# -- servers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_", "MLFLOW_"))}
    env.update({k: "1" for k in _THREADS})
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "DO_NOT_TRACK": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def _tree(pid: int) -> list[int]:
    """``pid`` and every process it started (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


class Server:
    """A server child in its own session; ``stop`` sends SIGTERM to that session and waits."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, ready_path: str, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.ready_url = f"http://127.0.0.1:{port}{ready_path}"

    def wait_ready(self, timeout: float = 120.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        self._fh.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def _group(self, sig: signal.Signals) -> bool:
        try:
            os.killpg(self.proc.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc.poll() is None:
            self._group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._group(signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.monotonic() + 15  # the session may still hold children (mlflow's uvicorn)
        while self._group(0) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._group(signal.SIGKILL)
        self._fh.close()
        return self.proc.returncode


def start_gateway(w: World, workers: int) -> Server:
    port = free_port()
    cmd = [str(BIN / "driftline"), "--config", str(w.config), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--poll-seconds", "1"]
    srv = Server("gateway", cmd, child_env(), port, "/readyz", w.root / "gateway.log")
    try:
        srv.wait_ready()
    except BaseException:
        srv.stop()
        raise
    return srv


def start_peer(w: World, workers: int) -> Server:
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}/{w.v1}", "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "--port", str(port), "-w", str(workers)]
    env = child_env(MLFLOW_TRACKING_URI=w.settings.mlflow_tracking_uri)
    srv = Server("peer", cmd, env, port, "/ping", w.root / "peer.log")
    try:
        srv.wait_ready()
    except BaseException:
        srv.stop()
        raise
    return srv


# -- the load generator ------------------------------------------------------------------------
def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))] if s else float("nan")


@dataclass
class Run:
    label: str
    rate: float
    sent: int
    lat_ms: list[float]  # from the scheduled send time, 200 answers only
    svc_ms: list[float]  # from the actual write, 200 answers only
    statuses: dict[int, int]
    wall_s: float  # first scheduled send to last answer
    versions: list[tuple[float, str | None]] = field(default_factory=list)
    prefix: str = ""
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    load_avg: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def achieved(self) -> float:
        return len(self.lat_ms) / self.wall_s if self.wall_s > 0 else 0.0

    def p(self, q: float, which: str = "lat") -> float:
        return pct(self.lat_ms if which == "lat" else self.svc_ms, q)

    def ok(self) -> bool:
        return self.errors == 0 and self.p(99) <= P99_CEILING_MS and self.achieved >= 0.95 * self.rate

    def line(self) -> str:
        return (
            f"  {self.label:<14} rate {self.rate:>4.0f}/s  n {self.sent:>5}  achieved {self.achieved:>5.0f}/s  "
            f"p50 {self.p(50):8.1f} ms  p99 {self.p(99):8.1f} ms  (from write: p50 {self.p(50, 'svc'):7.1f} "
            f"p99 {self.p(99, 'svc'):7.1f})  errors {self.errors}  "
            f"cpu/req server {1000 * self.server_cpu_s / max(1, self.sent):.1f} ms, "
            f"client {1000 * self.client_cpu_s / max(1, self.sent):.2f} ms  load {self.load_avg:.1f}"
        )


async def _load(
    port: int,
    path: str,
    bodies: Callable[[int], bytes],
    n: int,
    rate: float,
    label: str,
    keep_versions: bool,
    at_half: Callable[[], Any] | None,
) -> Run:
    loop = asyncio.get_running_loop()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    idle: collections.deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = collections.deque()
    sem = asyncio.Semaphore(CONNS)
    lat: list[float] = []
    svc: list[float] = []
    statuses: dict[int, int] = {}
    versions: list[tuple[float, str | None]] = []

    async def exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], req: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(req)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        return int(lines[0].split()[1]), await reader.readexactly(length)

    async def one(i: int, scheduled: float) -> None:
        body = bodies(i)
        req = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        async with sem:
            conn = idle.popleft() if idle else await asyncio.open_connection("127.0.0.1", port)
            sent = loop.time()
            try:
                status, payload = await asyncio.wait_for(exchange(conn, req), 120)
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                status, payload = 0, b""
                conn[1].close()
                conn = None
            done = loop.time()
            if conn is not None:
                idle.append(conn)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            lat.append((done - scheduled) * 1000)
            svc.append((done - sent) * 1000)
            if keep_versions:
                versions.append((time.monotonic(), json.loads(payload).get("version")))

    cpu0 = time.process_time()
    t0 = loop.time() + 0.02
    tasks = []
    half = None
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if at_half is not None and i == n // 2:
            half = loop.run_in_executor(None, at_half)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    wall = loop.time() - t0
    if half is not None:
        await half
    for _, writer in idle:
        writer.close()
    run = Run(label, rate, n, lat, svc, statuses, wall, versions)
    run.client_cpu_s = time.process_time() - cpu0
    return run


def load(
    srv: Server,
    path: str,
    bodies: Callable[[int], bytes],
    n: int,
    rate: float,
    label: str,
    *,
    keep_versions: bool = False,
    at_half: Callable[[], Any] | None = None,
    prefix: str = "",
) -> Run:
    cpu0 = cpu_seconds(srv.proc.pid)
    run = asyncio.run(_load(srv.port, path, bodies, n, rate, label, keep_versions, at_half))
    run.server_cpu_s = cpu_seconds(srv.proc.pid) - cpu0
    run.load_avg = os.getloadavg()[0]
    run.prefix = prefix
    say(run.line())
    time.sleep(1)  # let the machine settle between runs
    return run


def gateway_bodies(w: World, prefix: str) -> Callable[[int], bytes]:
    rid_key = w.contract.request_id
    return lambda i: json.dumps(dict(w.records[i % len(w.records)], **{rid_key: f"{prefix}-{i}"})).encode()


def peer_bodies(w: World) -> Callable[[int], bytes]:
    encoded = [
        json.dumps({"dataframe_split": {"columns": w.features, "data": [row]}}).encode() for row in w.feature_rows
    ]
    return lambda i: encoded[i % len(encoded)]


def measure(srv: Server, path: str, bodies: Callable[[str], Callable[[int], bytes]], seconds: float, step: float):
    """Warm-up, the low rate, the issue's rates, then the max-throughput search."""
    out: dict[Any, Any] = {"runs": []}
    out["runs"].append(load(srv, path, bodies("warm"), WARMUP, WARMUP_RATE, "warm-up", prefix="warm"))
    for rate in (LOW_RATE, *RATES):
        n = LOW_REQUESTS if rate == LOW_RATE else int(rate * seconds)
        out[rate] = load(srv, path, bodies(f"fixed{rate}"), n, rate, f"fixed {rate}/s", prefix=f"fixed{rate}")
        out["runs"].append(out[rate])
    out["saturation"] = max(out[r].achieved for r in RATES)
    # step up until the server saturates (achieves < 95 % of the rate, or fails requests); the best
    # step is the highest one with p99 under the ceiling
    best, ramp = None, []
    for rate in RAMP:
        n = max(50, int(rate * step))
        r = load(srv, path, bodies(f"ramp{rate}"), n, rate, f"ramp {rate}/s", prefix=f"ramp{rate}")
        out["runs"].append(r)
        ramp.append(r)
        if r.ok():
            best = r
        if r.errors or r.achieved < 0.95 * rate:
            break
    out["max"], out["ramp"] = best, ramp
    out["load"] = (min(r.load_avg for r in out["runs"]), max(r.load_avg for r in out["runs"]))
    return out


# -- the gateway, the peer, the floor ----------------------------------------------------------
def store_path(w: World) -> str:
    return w.settings.store_url.removeprefix("sqlite:///")


def stored(w: World, prefix: str) -> int:
    with sqlite3.connect(store_path(w)) as con:
        sql = f'SELECT COUNT(*) FROM predictions WHERE "{w.contract.request_id}" LIKE ?'
        return int(con.execute(sql, (prefix + "-%",)).fetchone()[0])


def in_app_latency(w: World, prefix: str) -> tuple[float, float]:
    """p50/p99 of the gateway's own ``latency_ms`` (handler start → scored, logged per row) for a phase."""
    with sqlite3.connect(store_path(w)) as con:
        sql = f'SELECT latency_ms FROM predictions WHERE "{w.contract.request_id}" LIKE ?'
        xs = [r[0] for r in con.execute(sql, (prefix + "-%",))]
    return pct(xs, 50), pct(xs, 99)


def run_gateway(w: World, workers: int, seconds: float, step: float, move_requests: int) -> dict[str, Any]:
    say(f"gateway: driftline serve --workers {workers} --poll-seconds 1")
    srv = start_gateway(w, workers)
    moved: dict[str, float] = {}
    try:
        out = measure(srv, "/predict", lambda prefix: gateway_bodies(w, prefix), seconds, step)
        # the move runs at 90 % of what the gateway achieved when overloaded: busy, not drowning
        out["move_rate"] = rate = max(10, int(0.9 * out["saturation"]) // 5 * 5)

        def promote() -> None:
            moved["t"] = time.monotonic()
            w.reg.promote(w.v2, reason="bench: move under traffic", actor="bench")
            moved["done"] = time.monotonic()

        if move_requests:
            bodies = gateway_bodies(w, "move")
            out["move"] = load(
                srv, "/predict", bodies, move_requests, rate, "move", keep_versions=True, at_half=promote, prefix="move"
            )
            out["runs"].append(out["move"])
    finally:
        code = srv.stop()
    text = srv.log.read_text(errors="replace")
    out["drained"] = [line.split("driftline.serve: ")[-1] for line in text.splitlines() if "drained" in line]
    out["log_errors"] = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
    say(f"  gateway stopped (exit {code}); {out['drained']}; {len(out['log_errors'])} error lines in its log")
    out["moved_at"] = moved
    out["answered"] = {r.prefix: r.statuses.get(200, 0) for r in out["runs"]}
    out["stored"] = {r.prefix: stored(w, r.prefix) for r in out["runs"]}
    out["in_app"] = {rate: in_app_latency(w, f"fixed{rate}") for rate in (LOW_RATE, *RATES)}
    return out


def run_peer(w: World, workers: int, seconds: float, step: float) -> dict[str, Any]:
    say(f"peer: mlflow models serve -m models:/{NAME}/{w.v1} --env-manager local -w {workers}")
    srv = start_peer(w, workers)
    try:
        bodies = peer_bodies(w)
        return measure(srv, "/invocations", lambda _prefix: bodies, seconds, step)
    finally:
        code = srv.stop()
        say(f"  peer stopped (exit {code})")


def run_floor(w: World) -> dict[str, tuple[float, float, int]]:
    from threadpoolctl import threadpool_limits

    from driftline import training
    from driftline.serve.app import Gateway
    from driftline.serve.door import Door, admit

    threadpool_limits(1)
    c = w.contract
    pipeline = w.reg.load(version=w.v1)
    rows = [w.frame.iloc[[i]].reset_index(drop=True) for i in range(200)]
    feats = [training.features_frame(r, c) for r in rows]
    scorer, path = training.row_scorer(pipeline, c)
    if path != "direct":
        raise RuntimeError("the bench's pipeline should take the direct row path")
    checked = [admit(json.dumps(_jsonable_record(w, i)).encode(), c).records for i in range(200)]
    door = Door(c)
    make = gateway_bodies(w, "floor")
    bodies = [make(i) for i in range(FLOOR_CALLS)]
    gw = Gateway(  # the gateway's request path in-process, logging to the same store ("floor-" ids)
        w.settings,
        c,
        poll_seconds=3600,
        admin_token=None,
        queue_capacity=100_000,
        batch_rows=500,
        flush_seconds=0.5,
        max_body_bytes=1 << 20,
        max_records=1000,
    )
    gw.open()
    if gw.served is None:
        raise RuntimeError("the in-process gateway has no champion")
    cases: dict[str, tuple[int, Callable[[int], Any]]] = {
        "`pipeline.predict_proba(features)`": (FLOOR_CALLS, lambda i: pipeline.predict_proba(feats[i % 200])),
        "`training.score(pipeline, one_row_frame, contract)`": (
            FLOOR_CALLS,
            lambda i: training.score(pipeline, rows[i % 200], c),
        ),
        "`training.row_scorer(pipeline, contract)` on one checked row (the gateway's scorer)": (
            FLOOR_CALLS,
            lambda i: scorer(checked[i % 200]),
        ),
        "door only: `Door(contract).admit(body)`": (FLOOR_SPLIT_CALLS, lambda i: door.admit(bodies[i])),
        "door, full check: `ingest.check_predictions` path (any record the quick path leaves)": (
            FLOOR_SPLIT_CALLS,
            lambda i: _full_check(bodies[i], c),
        ),
        "`Gateway.predict(body)` (door + score + enqueue)": (
            FLOOR_SPLIT_CALLS,
            lambda i: gw.predict(bodies[i], time.perf_counter()),
        ),
        "alias poll: `registry.alias_version('champion')`": (FLOOR_SPLIT_CALLS // 5, lambda i: w.reg.alias_version()),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    try:
        for i in range(100):  # warm-up (ids floor-0..99 are reused below: the store skips them)
            for _, f in cases.values():
                f(i)
        for i in range(FLOOR_CALLS):  # interleaved, so machine noise hits every case alike
            for k, (n, f) in cases.items():
                if i < n:
                    t = time.perf_counter()
                    f(i)
                    times[k].append((time.perf_counter() - t) * 1000)
    finally:
        gw.close()
    return {k: (pct(v, 50), pct(v, 99), len(v)) for k, v in times.items()}


def _jsonable_record(w: World, i: int) -> dict[str, Any]:
    return dict(w.records[i], **{w.contract.request_id: f"floor-row-{i}"})


def _full_check(body: bytes, contract: Any) -> Any:
    """The door's full check, which awkward records take (Unix times, numbers as text, ...)."""
    import pandas as pd

    from driftline.serve.door import _admit_checked

    return _admit_checked([json.loads(body)], True, contract, pd.Timestamp("2026-01-01"))


# -- report ------------------------------------------------------------------------------------
def fmt(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and a == a and b == b else "–"


def report(
    w: World, g: dict[str, Any], p: dict[str, Any] | None, floor: dict[str, Any], workers: int, step_s: float
) -> str:
    f50 = floor["`training.score(pipeline, one_row_frame, contract)`"][0]
    wk = f"{workers} worker{'s' if workers > 1 else ''}"
    out = [
        "| what | req/s sent | req/s achieved | p50 ms | p99 ms | gateway / peer p50 · p99 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for rate in (LOW_RATE, *RATES):
        gr = g[rate]
        pr = p[rate] if p else None
        vs = f"{ratio(gr.p(50), pr.p(50))} · {ratio(gr.p(99), pr.p(99))}" if pr else ""
        out.append(
            f"| gateway ({wk}), {gr.sent:,} requests, {gr.errors} errors | {rate} | {gr.achieved:.0f} "
            f"| {fmt(gr.p(50))} | {fmt(gr.p(99))} | {vs} |"
        )
        if pr:
            out.append(
                f"| peer `mlflow models serve` ({wk}), {pr.sent:,} requests, {pr.errors} errors | {rate} "
                f"| {pr.achieved:.0f} | {fmt(pr.p(50))} | {fmt(pr.p(99))} | |"
            )
    for rate in (LOW_RATE, *RATES):
        a, b = g["in_app"][rate]
        out.append(
            f"| gateway's own `latency_ms` per logged row (handler start → scored), {rate} req/s | | | {fmt(a)} "
            f"| {fmt(b)} | |"
        )
    out += ["", "| throughput | gateway | peer | gateway / peer |", "|---|---:|---:|---:|"]
    gm, pm = g["max"], (p or {}).get("max")
    gms = f"{gm.rate:.0f} (p99 {fmt(gm.p(99))} ms)" if gm else f"< {RAMP[0]}"
    pms = (f"{pm.rate:.0f} (p99 {fmt(pm.p(99))} ms)" if pm else f"< {RAMP[0]}") if p else ""
    out.append(
        f"| max req/s sustained with p99 ≤ {P99_CEILING_MS:.0f} ms, 0 errors | {gms} | {pms} "
        f"| {ratio(gm.rate, pm.rate) if gm and pm else '–'} |"
    )
    ps = f"{p['saturation']:.0f}" if p else ""
    out.append(
        f"| req/s achieved when overloaded (best of the 200 and 400 req/s runs) | {g['saturation']:.0f} | {ps} "
        f"| {ratio(g['saturation'], p['saturation']) if p else '–'} |"
    )
    gcpu = 1000 * g[LOW_RATE].server_cpu_s / g[LOW_RATE].sent
    pcpu = 1000 * p[LOW_RATE].server_cpu_s / p[LOW_RATE].sent if p else float("nan")
    out.append(f"| server CPU per request at {LOW_RATE} req/s, ms | {gcpu:.1f} | {fmt(pcpu)} | {ratio(gcpu, pcpu)} |")
    by_rate: dict[float, list[Run | None]] = {r.rate: [r, None] for r in g["ramp"]}
    for r in (p or {}).get("ramp", []):
        by_rate.setdefault(r.rate, [None, None])[1] = r
    out += [
        "",
        f"| ramp: req/s sent, {step_s:g} s each (✗ = p99 > {P99_CEILING_MS:.0f} ms or < 95 % achieved) "
        "| gateway p50 / p99 ms | peer p50 / p99 ms |",
        "|---:|---:|---:|",
    ]
    for rate, pair in sorted(by_rate.items()):
        cells = [f"{fmt(r.p(50))} / {fmt(r.p(99))}{'' if r.ok() else ' ✗'}" if r else "" for r in pair]
        out.append(f"| {rate:.0f} | {cells[0]} | {cells[1]} |")
    out += [
        "",
        "| floor, in-process, OMP_NUM_THREADS=1 | calls | p50 ms | p99 ms | × score p50 |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, (a, b, n) in floor.items():
        out.append(f"| {k} | {n:,} | {a:.2f} | {b:.2f} | {a / f50:.2f} |")
    gr = g[LOW_RATE]
    out.append(
        f"| gateway over HTTP at {LOW_RATE} req/s (from above) | {gr.sent} | {fmt(gr.p(50))} | {fmt(gr.p(99))} "
        f"| {gr.p(50) / f50:.2f} |"
    )
    total_ok, total_st = sum(g["answered"].values()), sum(g["stored"].values())
    log_rows = [
        f"| gateway log | {'; '.join(g['drained'])}; {len(g['log_errors'])} ERROR lines |",
        f"| whole gateway run: 200 answers / stored rows | {total_ok:,} / {total_st:,} |",
    ]
    if "move" not in g:
        return "\n".join([*out, "", "| prediction log | value |", "|---|---:|", *log_rows])
    mv, moved = g["move"], g["moved_at"]
    first_v2 = next((t for t, v in sorted(mv.versions) if v == w.v2), None)
    switch = f"{first_v2 - moved['t']:.2f} s" if first_v2 is not None and "t" in moved else "never"
    seen = [v for _, v in sorted(mv.versions)]
    changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    ok = mv.statuses.get(200, 0)
    out += ["", "| alias move under load | value |", "|---|---:|"]
    out.append(
        f"| requests sent at {g['move_rate']} req/s; `promote(v{w.v2})` called after request {mv.sent // 2:,} "
        f"| {mv.sent:,} |"
    )
    out.append(f"| errors (non-200 answers and transport errors) | {mv.errors} |")
    out.append(f"| 200 answers | {ok:,} |")
    out.append(
        f"| rows in the store's `predictions` table for those ids (after the SIGTERM drain) | {g['stored']['move']:,} |"
    )
    out.append(f"| lost (200 answers − stored rows) | {ok - g['stored']['move']} |")
    out.append(f"| answers by v{w.v1} / v{w.v2} | {seen.count(w.v1):,} / {seen.count(w.v2):,} |")
    out.append(
        f"| `promote` call took | {moved['done'] - moved['t']:.2f} s |" if "done" in moved else "| promote | – |"
    )
    out.append(f"| first v{w.v2} answer after the promote call started | {switch} |")
    last_v1 = max((t for t, v in mv.versions if v == w.v1), default=None)
    if first_v2 is not None and last_v1 is not None and last_v1 > first_v2:
        late = sum(1 for t, v in mv.versions if v == w.v1 and t > first_v2)
        out.append(
            f"| v{w.v1} answers after the first v{w.v2} one (the workers poll apart) | {late} over "
            f"{last_v1 - first_v2:.2f} s |"
        )
    out.append(f"| version changes in answer order | {changes} |")
    out.append(f"| p50 / p99 during the move, ms | {fmt(mv.p(50))} / {fmt(mv.p(99))} |")
    return "\n".join([*out, *log_rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of both servers (default 2 = cores)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of sending per fixed-rate run")
    ap.add_argument("--step-seconds", type=float, default=5.0, help="seconds of sending per max-throughput step")
    ap.add_argument(
        "--move-requests", type=int, default=MOVE_REQUESTS, help="requests in the alias-move run (0: skip it)"
    )
    ap.add_argument("--no-peer", action="store_true", help="skip mlflow models serve")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, store, tracking DB)")
    args = ap.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds through the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for k in _THREADS:
        os.environ[k] = "1"
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    for k in [k for k in os.environ if k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING"))]:
        del os.environ[k]
    t_start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        say(f"world in {root} ({os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}) ...")
        w = build_world(root)
        say(f"  simulated, trained, registered v{w.v1} (champion) and v{w.v2} in {time.monotonic() - t_start:.0f} s")
        floor = run_floor(w)
        floor_load = os.getloadavg()[0]
        for k, (a, b, n) in floor.items():
            say(f"  floor {k:<56} n {n:>5}  p50 {a:7.2f} ms  p99 {b:7.2f} ms")
        g = run_gateway(w, args.workers, args.seconds, args.step_seconds, args.move_requests)
        say(f"  answered: {g['answered']}\n  stored:   {g['stored']}")
        p = None if args.no_peer else run_peer(w, args.workers, args.seconds, args.step_seconds)
        say("")
        loads = [floor_load, *g["load"], *(p["load"] if p else ())]
        say(f"load average (1 min) seen during the runs: {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cpus")
        say(report(w, g, p, floor, args.workers, args.step_seconds))
        say(f"\nwhole bench {time.monotonic() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
