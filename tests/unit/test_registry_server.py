"""The registry against a real ``mlflow server`` on loopback: the REST path alias moves take.

Against ``http(s)`` tracking URIs, promote / rollback / history / repair talk to the server's
REST API without MLflow's client; this checks that path end to end with the same expectations
as the SQLite tests, plus registration and loading through the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from driftline.cli import build_app
from driftline.cli._common import run
from driftline.errors import DriftlineError
from driftline.registry import ModelRegistry, Verdict

pytestmark = [pytest.mark.slow, pytest.mark.system]
MODEL = "churn-served"


class SimulatedCrash(BaseException):
    """Stops a write between two steps, as a crash would."""


def crash_after_alias_move(step: str) -> None:
    if step == "alias_moved":
        raise SimulatedCrash(step)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start in 180 s"
                time.sleep(0.3)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('served-store') / 'store.db'}"


@pytest.fixture(scope="module")
def served(server, store_url) -> ModelRegistry:
    reg = ModelRegistry(server, MODEL, store_url=store_url)
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 20), "sessions": rng.uniform(0, 10, 20)})
    y = (x["sessions"] < 5).astype(int)
    for i, passed in ((1, True), (2, False), (3, True)):
        created = reg.register_candidate(
            verdict=Verdict(gates_passed=passed),
            pipeline=LogisticRegression(C=float(i)).fit(x, y),
            input_example=x.head(3),
            params={"C": float(i)},
            metrics={"test.average_precision": 0.5 + i / 100},
            tags={"trigger": "schedule", "gate.passed": str(passed).lower()},
            artifacts={"contract.json": {"name": "served"}},
            idempotency_key=f"served-{i}",
        )
        assert created.version == str(i)
    again = reg.register_candidate(
        verdict=Verdict(gates_passed=True),
        pipeline=LogisticRegression().fit(x, y),
        input_example=x.head(3),
        params={},
        metrics={},
        tags={},
        artifacts={},
        idempotency_key="served-2",
    )
    assert (again.version, again.created) == ("2", False)
    return reg


def test_rest_path_promote_rollback_history_and_repair(served, server, store_url, monkeypatch, capsys):
    reg = served
    assert reg.champion() is None
    assert reg.promote("1", reason="bootstrap", actor="a").to_version == "1"
    with pytest.raises(DriftlineError, match=r"version 2 may not become champion: its gates failed"):
        reg.promote("2", reason="x", actor="a")
    with pytest.raises(DriftlineError, match=f"model '{MODEL}' has no version 9"):
        reg.rollback(to_version="9", reason="x", actor="a")
    assert reg.promote("3", reason="better", actor="a").from_version == "1"

    # A crash after the alias moved, before the record was completed, is settled on the next write.
    reg.checkpoint_hook = crash_after_alias_move
    with pytest.raises(SimulatedCrash):
        reg.rollback(previous=True, reason="precision fell", actor="a")
    reg.checkpoint_hook = None
    assert reg.store.moves(MODEL)[-1].state == "intent"
    # Another spelling of the same server shares the history: it is in the store, not keyed by URI.
    other = ModelRegistry(server.replace("127.0.0.1", "localhost"), MODEL, store_url=store_url)
    assert [(m.seq, m.state) for m in other.repair()] == [(3, "done")]
    assert reg.alias_version("champion") == "1" and reg.history()[-1].state == "done"

    monkeypatch.setenv("DRIFTLINE_MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("DRIFTLINE_STORE_URL", store_url)
    monkeypatch.setenv("DRIFTLINE_MODEL_NAME", MODEL)
    monkeypatch.setenv("USER", "operator")
    capsys.readouterr()
    assert run(build_app(), ["models", "rollback", "--to", "3", "--reason", "it was fine"]) == 0
    assert capsys.readouterr().out.strip() == "champion: version 1 -> version 3 (rollback, recorded as history #4)"
    assert run(build_app(), ["models", "history", "--json"]) == 0
    moves = json.loads(capsys.readouterr().out)
    assert [(m["from_version"], m["to_version"], m["kind"], m["state"]) for m in moves] == [
        (None, "1", "promote", "done"),
        ("1", "3", "promote", "done"),
        ("3", "1", "rollback", "done"),
        ("1", "3", "rollback", "done"),
    ]
    assert moves[-1]["actor"] == "operator"
    assert run(build_app(), ["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["aliases"], r["gate_status"]) for r in rows] == [
        ("1", [], "passed"),
        ("2", [], "failed"),
        ("3", ["champion"], "passed"),
    ]

    champion = reg.champion()
    assert champion.version == "3" and champion.metrics == {"test.average_precision": 0.53}
    assert reg.load().C == 3.0
    assert reg.read_artifact_json("3", "contract.json") == {"name": "served"}


def test_rest_listing_equals_mlflow_client(served, server):
    """``models list`` and ``models show`` against a server read versions and artifacts over REST."""
    from driftline.registry.backends import _MlflowBackend, _RestBackend

    rest, client = _RestBackend(server, MODEL), _MlflowBackend(server, MODEL)
    by_rest = sorted(rest.search_versions(), key=lambda d: int(d.version))
    by_client = sorted(client.search_versions(), key=lambda d: int(d.version))
    assert [d.version for d in by_rest] == ["1", "2", "3"]
    for a, b in zip(by_rest, by_client, strict=True):
        assert (a.version, a.run_id, a.tags, a.created_ms, a.source, a.status, sorted(a.aliases)) == (
            b.version,
            b.run_id,
            b.tags,
            b.created_ms,
            b.source,
            b.status,
            sorted(b.aliases),
        )
        listed = rest.list_artifacts(a.run_id)
        assert listed == client.list_artifacts(a.run_id)
        assert "contract.json" in [path for path, _ in listed]


def test_unknown_model_on_the_server(server, store_url):
    reg = ModelRegistry(server, "no-such-model", store_url=store_url)
    assert reg.champion() is None and reg.history() == []
    with pytest.raises(DriftlineError, match="no registered model 'no-such-model'"):
        reg.rollback(previous=True, reason="x", actor="a")
    with pytest.raises(DriftlineError, match="no registered model 'no-such-model'"):
        reg.get("1")


def _server_racer(uri: str, store_url: str, actor: str, seed: int, barrier, out) -> None:
    import random

    reg = ModelRegistry(uri, MODEL, store_url=store_url)
    rng = random.Random(seed)
    reg.alias_version("champion")  # connect before the start line
    barrier.wait(120)
    results = []
    for i in range(25):
        op = rng.choice(("promote", "promote", "previous"))
        try:
            if op == "promote":
                m = reg.promote(rng.choice(("1", "3")), reason=f"{actor} #{i}", actor=actor)
            else:
                m = reg.rollback(previous=True, reason=f"{actor} #{i}", actor=actor)
            results.append(("ok", m.seq, m.changed))
        except DriftlineError as e:
            results.append(("error", str(e), False))
    out.put((actor, results))


def test_four_processes_racing_through_the_server_under_two_spellings_keep_one_chain(served, server, store_url):
    import multiprocessing as mp
    from collections import Counter
    from itertools import pairwise

    served.alias_version("champion")
    spellings = [server, server, server.replace("127.0.0.1", "localhost"), server.replace("127.0.0.1", "localhost")]
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(spellings)), ctx.Queue()
    procs = [
        ctx.Process(target=_server_racer, args=(uri, store_url, f"racer-{i}", i, barrier, out))
        for i, uri in enumerate(spellings)
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    errors = [r[1] for rs in results.values() for r in rs if r[0] == "error"]
    assert all("bottom of the lineage" in e for e in errors), errors[:3]  # never 'busy', never a broken chain
    moves = served.history("champion")
    seqs = [m.seq for m in moves]
    assert len(seqs) == len(set(seqs)) and [m.prev_seq for m in moves[1:]] == seqs[:-1]
    done = [m for m in moves if m.state == "done"]
    assert {m.state for m in moves} == {"done"}
    assert all(a.to_version == b.from_version for a, b in pairwise(done))
    assert served.alias_version("champion") == done[-1].to_version
    reported = Counter(r[1] for rs in results.values() for r in rs if r[0] == "ok" and r[2])
    assert set(reported) == {m.seq for m in done if m.actor.startswith("racer-")}
    assert all(n == 1 for n in reported.values()) and len(reported) >= 10
