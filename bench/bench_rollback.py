"""Rollback speed: from the rollback command to ``models:/NAME@champion`` resolving to the old version.

Starts a local ``mlflow server`` (SQLite backend, loopback, temp folder), registers three tiny
versions, promotes 1 -> 2 -> 3, then times, in interleaved rounds:

* ``library``      ``ModelRegistry.rollback(previous=True)`` (rule checked from the store, alias move,
                   history intent and done rows in the store's ``alias_history`` table)
* ``cli``          ``driftline models rollback --to 2`` as a subprocess (interpreter start included)
* ``peer``         a bare ``MlflowClient.set_registered_model_alias`` (no history, no checks)
* ``peer-cli``     the same bare call as a ``python -c`` subprocess (what a script without driftline pays)
* ``cli-startup``  ``driftline --help``-equivalent start-up only (build the app, no command)
* ``cli-sqlite``   ``driftline models rollback`` against the embedded SQLite tracking store (no server)
* ``library-sqlite`` ``ModelRegistry.rollback(previous=True)`` against that embedded SQLite tracking
                   store, in-process (MLflow already imported)
* ``peer-sqlite``  a bare ``MlflowClient.set_registered_model_alias`` against that embedded store
* ``load-after``   ``ModelRegistry.load("champion")`` right after a rollback (what serving then pays)

Each timing stops when a separate MLflow client resolves ``models:/NAME@champion`` to the old
version. The champion is put back on version 3 (untimed) between measurements. Each tracking
backend has its own production store (``store_url``, a SQLite file in the temp folder) holding the
registration records and the alias history; the CLI subprocesses get the same one through
``DRIFTLINE_STORE_URL``.

    .venv/bin/python bench/bench_rollback.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

NAME = "bench-churn"
TARGET_S = 1.0  # issue 6: rollback within 1 s against a local tracking server
LIBRARY_TARGET_S = 0.1  # the library path, with the store-backed history and rule


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited early; see {root / 'server.log'}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, uri
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("mlflow server did not start within 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def register_three(reg) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from driftline.registry import Verdict

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 20), "sessions": rng.uniform(0, 10, 20)})
    y = (x["sessions"] < 5).astype(int)
    for i in (1, 2, 3):
        reg.register_candidate(
            pipeline=LogisticRegression(C=float(i)).fit(x, y),
            input_example=x.head(3),
            params={"C": float(i)},
            metrics={"test.average_precision": 0.5 + i / 100},
            tags={"trigger": "bootstrap" if i == 1 else "schedule", "gate.passed": "true"},
            artifacts={"contract.json": {"name": "bench"}},
            verdict=Verdict(gates_passed=True),
            idempotency_key=f"bench-{i}",
        )
        reg.promote(str(i), reason="bench setup", actor="bench")


def wait_resolved(client, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while str(client.get_model_version_by_alias(NAME, "champion").version) != expected:
        if time.monotonic() > deadline:
            got = client.get_model_version_by_alias(NAME, "champion").version
            raise SystemExit(f"champion never resolved to version {expected} (still {got!r})")
        time.sleep(0.001)


def timed(action: Callable[[], None], client, expected: str) -> float:
    start = time.perf_counter()
    action()
    wait_resolved(client, expected)
    return time.perf_counter() - start


def run_cli(env: dict[str, str], *argv: str) -> None:
    exe = Path(sys.executable).with_name("driftline")
    out = subprocess.run([str(exe), *argv], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"driftline {' '.join(argv)} failed: {out.stderr.strip()}")


def run_python(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"python -c failed: {out.stderr.strip()[-400:]}")


def check_history(reg, expected: int, external: int) -> None:
    """Every timed and reset move is in the store's alias history, done, one chain."""
    history = reg.history("champion")
    states = {m.state for m in history}
    outside = sum(m.kind == "external" for m in history)
    chained = all(b.prev_seq == a.seq for a, b in itertools.pairwise(history))
    if len(history) != expected or states != {"done"} or outside != external or not chained:
        raise SystemExit(
            f"history incomplete for {reg.tracking_uri}: {len(history)} moves (expected {expected}), "
            f"states {sorted(states)}, {outside} external (expected {external}), chained={chained}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    from mlflow import MlflowClient

    from driftline.registry import ModelRegistry

    root = Path(tempfile.mkdtemp(prefix="driftline-bench-rollback-"))
    t0 = time.perf_counter()
    server, uri = start_server(root)
    print(f"mlflow server at {uri} (started in {time.perf_counter() - t0:.1f} s)")
    try:
        # One production store per tracking backend: both use the same model name, and a store's
        # alias history is one chain per (model, alias).
        store_url = f"sqlite:///{root / 'store.db'}"
        reg = ModelRegistry(uri, NAME, store_url=store_url)
        register_three(reg)
        client = MlflowClient(uri)

        sqlite_uri = f"sqlite:///{root / 'embedded.db'}"
        store_url_sqlite = f"sqlite:///{root / 'store-embedded.db'}"
        reg_sqlite = ModelRegistry(sqlite_uri, NAME, root / "embedded-artifacts", store_url=store_url_sqlite)
        register_three(reg_sqlite)
        client_sqlite = MlflowClient(sqlite_uri)

        env = {
            **os.environ,
            "DRIFTLINE_MLFLOW_TRACKING_URI": uri,
            "DRIFTLINE_STORE_URL": store_url,
            "DRIFTLINE_MODEL_NAME": NAME,
            "DRIFTLINE_HOME": str(root / "home"),
        }
        env.pop("DRIFTLINE_CONFIG", None)  # the environment above is the whole configuration
        env_sqlite = {**env, "DRIFTLINE_MLFLOW_TRACKING_URI": sqlite_uri, "DRIFTLINE_STORE_URL": store_url_sqlite}
        peer_code = (
            "from mlflow import MlflowClient; "
            f"MlflowClient({uri!r}).set_registered_model_alias({NAME!r}, 'champion', '2')"
        )
        startup_code = "from driftline.cli import build_app; build_app()"

        def reset() -> None:
            reg.promote("3", reason="bench reset", actor="bench")

        kinds: dict[str, Callable[[], float]] = {
            "library": lambda: timed(lambda: reg.rollback(previous=True, reason="bench", actor="bench"), client, "2"),
            "cli": lambda: timed(
                lambda: run_cli(env, "models", "rollback", "--to", "2", "--reason", "bench"), client, "2"
            ),
            "peer": lambda: timed(lambda: client.set_registered_model_alias(NAME, "champion", "2"), client, "2"),
            "peer-cli": lambda: timed(lambda: run_python(peer_code), client, "2"),
        }
        extra = ["cli-startup", "cli-sqlite", "library-sqlite", "peer-sqlite", "load-after"]
        samples: dict[str, list[float]] = {k: [] for k in [*kinds, *extra]}
        for _ in range(args.repeats):
            for kind, measure in kinds.items():
                samples[kind].append(measure())
                if kind == "library":  # then how long serving takes to load models:/NAME@champion
                    start = time.perf_counter()
                    reg.load("champion")
                    samples["load-after"].append(time.perf_counter() - start)
                reset()
            start = time.perf_counter()
            run_python(startup_code)
            samples["cli-startup"].append(time.perf_counter() - start)
            samples["cli-sqlite"].append(
                timed(
                    lambda: run_cli(env_sqlite, "models", "rollback", "--to", "2", "--reason", "bench"),
                    client_sqlite,
                    "2",
                )
            )
            reg_sqlite.promote("3", reason="bench reset", actor="bench")
            samples["library-sqlite"].append(
                timed(
                    lambda: reg_sqlite.rollback(previous=True, reason="bench", actor="bench"),
                    client_sqlite,
                    "2",
                )
            )
            reg_sqlite.promote("3", reason="bench reset", actor="bench")
            samples["peer-sqlite"].append(
                timed(lambda: client_sqlite.set_registered_model_alias(NAME, "champion", "2"), client_sqlite, "2")
            )
            reg_sqlite.promote("3", reason="bench reset", actor="bench")

        # Server: setup (3) + per round library and cli (rollback + reset each) and the peers
        # (their move bypasses driftline, so the reset first records it as "external", then promotes).
        check_history(reg, 3 + 8 * args.repeats, external=2 * args.repeats)
        # Embedded: setup (3) + per round cli-sqlite and library-sqlite (rollback + reset each) and
        # peer-sqlite (external + reset).
        check_history(reg_sqlite, 3 + 6 * args.repeats, external=args.repeats)

        print(f"\n{args.repeats} repeats; seconds from command to models:/{NAME}@champion resolving to the old version")
        print(f"{'kind':<14} {'median':>8} {'min':>8} {'max':>8}")
        med = {}
        for kind, values in samples.items():
            med[kind] = statistics.median(values)
            print(f"{kind:<14} {med[kind]:8.3f} {min(values):8.3f} {max(values):8.3f}")
        print(f"\nratio library / peer          = {med['library'] / med['peer']:.1f}x")
        print(f"ratio cli / peer-cli          = {med['cli'] / med['peer-cli']:.2f}x")
        print(f"cli minus its start-up        = {med['cli'] - med['cli-startup']:.3f} s")
        print(f"ratio library-sqlite / peer   = {med['library-sqlite'] / med['peer']:.1f}x  (server peer)")
        print(f"ratio library-sqlite / peer-sqlite = {med['library-sqlite'] / med['peer-sqlite']:.1f}x")
        for kind in ("library", "cli"):
            verdict = "meets" if med[kind] <= TARGET_S else "MISSES"
            print(f"{kind} {verdict} the {TARGET_S:.0f} s target (median {med[kind]:.3f} s)")
        for kind in ("library", "library-sqlite"):
            verdict = "meets" if med[kind] <= LIBRARY_TARGET_S else "MISSES"
            print(f"{kind} {verdict} the {LIBRARY_TARGET_S:.1f} s library target (median {med[kind]:.3f} s)")
    finally:
        stop_server(server)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
