"""The champion switch against an adversary: killed processes, racing writers, bypasses, tampering.

Real MLflow on SQLite and a real driftline store under tmp_path, real subprocesses (spawn) killed
with ``os._exit`` at each checkpoint of a move or a registration. Nothing of MLflow or the store is
mocked. Versions of the shared template: 1, 3, 5, 6 passed their gates; 2 and 4 failed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import sqlite3
import time
from collections import Counter
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.errors import DriftlineError, RefusedError
from driftline.registry import AliasMove, ModelRegistry, RegistryStore, Verdict, refusal_reasons
from driftline.registry.sqlite import usable as sqlite_usable

MODEL = "churn"
PASSING_VERSIONS = ("1", "3", "5", "6")
FAILING_VERSIONS = ("2", "4")
PASSING_TAGS = {"trigger": "schedule", "gate.passed": "true", "gate.beat_champion": "pass: 0.52 >= 0.50"}
FAILING_TAGS = {"trigger": "drift", "gate.passed": "false", "gate.beat_champion": "fail: 0.41 < 0.45"}
SPAWN = mp.get_context("spawn")
Op = tuple[str, str | None]  # ("promote", "3") | ("previous", None) | ("to", "1")


# -- helpers (copied in spirit from test_registry.py, which is being edited elsewhere) -----------
def tiny_data(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 20), "sessions": rng.uniform(0, 10, 20)})
    y = pd.Series((x["sessions"] + rng.normal(0, 1, 20) < 5).astype(int), name="churned")
    return x, y


def fit(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = tiny_data(seed)
    return LogisticRegression().fit(x, y)


def register(reg: ModelRegistry, key: str, *, passed: bool, seed: int) -> Any:
    x, _ = tiny_data(seed)
    return reg.register_candidate(
        pipeline=fit(seed),
        input_example=x.head(3),
        params={"C": 1.0, "seed": seed},
        metrics={"test.average_precision": 0.5 + seed / 100},
        tags=PASSING_TAGS if passed else FAILING_TAGS,
        artifacts={"contract.json": {"name": "tiny"}},
        verdict=Verdict(gates_passed=passed, reasons=() if passed else ("gate.beat_champion: 0.41 < 0.45",)),
        idempotency_key=key,
    )


def make_registry(root: Path, art: Path, tracking_uri: str | None = None, **kwargs: Any) -> ModelRegistry:
    uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    return ModelRegistry(uri, MODEL, art, store_url=f"sqlite:///{root / 'store.db'}", **kwargs)


def copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (WAL included) through SQLite's backup API."""
    with closing(sqlite3.connect(src)) as s, closing(sqlite3.connect(dst)) as d:
        s.backup(d)


def clone(template: Path, dst: Path) -> Path:
    """A private copy of the template's MLflow database and driftline store (artifacts are shared)."""
    dst.mkdir(parents=True)
    copy_db(template / "mlflow.db", dst / "mlflow.db")
    copy_db(template / "store.db", dst / "store.db")
    return dst


def raw_moves(root: Path, alias: str = "champion") -> list[AliasMove]:
    """The history as stored, read without any registry call (so nothing is settled by reading)."""
    store = RegistryStore(f"sqlite:///{root / 'store.db'}")
    try:
        return store.moves(MODEL, alias)
    finally:
        store.dispose()


def raw_alias(root: Path, alias: str = "champion") -> str | None:
    from mlflow import MlflowClient

    aliases = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_registered_model(MODEL).aliases or {}
    return None if alias not in aliases else str(aliases[alias])


def apply(reg: ModelRegistry, op: Op, actor: str, **kwargs: Any) -> AliasMove:
    kind, arg = op
    if kind == "promote":
        return reg.promote(arg, reason=f"{actor}: promote {arg}", actor=actor, **kwargs)
    if kind == "to":
        return reg.rollback(to_version=arg, reason=f"{actor}: pin {arg}", actor=actor, **kwargs)
    assert kind == "previous"
    return reg.rollback(previous=True, reason=f"{actor}: undo", actor=actor, **kwargs)


def assert_chain(moves: list[AliasMove], *, allow_external: bool = True) -> list[AliasMove]:
    """Every row settled, linked to the one before, and done rows hand the alias on; returns the done rows."""
    assert moves, "no history recorded"
    seqs = [m.seq for m in moves]
    assert len(set(seqs)) == len(seqs), f"a seq was claimed twice: {seqs}"
    assert moves[0].prev_seq == 0
    for a, b in pairwise(moves):
        assert b.prev_seq == a.seq, f"chain broken between #{a.seq} and #{b.seq} (prev_seq {b.prev_seq})"
    for m in moves:
        assert m.state in ("done", "aborted"), f"#{m.seq} left in state {m.state}"
        if m.state == "aborted":
            assert m.note, f"#{m.seq} aborted without a note"
        if not allow_external:
            assert m.kind != "external", f"#{m.seq} recorded an outside move: {m}"
    done = [m for m in moves if m.state == "done"]
    for a, b in pairwise(done):
        assert a.to_version == b.from_version, (
            f"done #{a.seq} ends at {a.to_version}, #{b.seq} starts at {b.from_version}"
        )
    return done


def assert_consistent(reg: ModelRegistry, alias: str = "champion") -> list[AliasMove]:
    moves = reg.history(alias)  # one read: it settles whatever a dead process left in flight
    done = assert_chain(moves)
    assert reg.alias_version(alias) == done[-1].to_version
    return moves


def died_at_its_step(root: Path, exitcode: int | None) -> Path:
    assert exitcode == 3, f"the child did not die at its checkpoint (exit code {exitcode})"
    return root


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """MLflow database + driftline store with versions 1..6 (2 and 4 failed their gates), no aliases."""
    root = tmp_path_factory.mktemp("switch-template")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(root)  # MLflow's Default experiment keeps its artifacts under the cwd
        reg = make_registry(root, root / "artifacts")
        for v in range(1, 7):
            passed = str(v) in PASSING_VERSIONS
            assert register(reg, f"key-{v}", passed=passed, seed=v).version == str(v)
        reg.store.dispose()
    return root


@pytest.fixture
def store(template, tmp_path) -> Path:
    return clone(template, tmp_path / "store")


@pytest.fixture
def reg(store, template) -> ModelRegistry:
    return make_registry(store, template / "artifacts")


# -- 1 & 2: a process killed at every step of a move ----------------------------------------------
def _doomed_move(root: str, art: str, setup: list[Op], doomed: Op, step: str) -> None:
    reg = make_registry(Path(root), Path(art))
    for op in setup:
        apply(reg, op, "setup")
    reg.checkpoint_hook = lambda s: os._exit(3) if s == step else None
    apply(reg, doomed, "doomed")
    os._exit(0)  # the step was never reached


MOVE_STEPS = ("intent_written", "alias_moved", "recorded")
SCENARIOS: dict[str, tuple[list[Op], Op, str | None, str]] = {
    # name: (setup, doomed move, champion before, champion after)
    "bootstrap": ([], ("promote", "1"), None, "1"),
    "retrain": ([("promote", "1")], ("promote", "3"), "1", "3"),
    "rollback": ([("promote", "1"), ("promote", "3"), ("promote", "5")], ("previous", None), "5", "3"),
}
KILL_CASES = [(name, step) for name in SCENARIOS for step in MOVE_STEPS]


@pytest.fixture(scope="module")
def killed_moves(template, tmp_path_factory) -> dict[tuple[str, str], tuple[Path, int | None]]:
    """Every (scenario, step) run at once in its own killed subprocess, on its own copy of the store."""
    base = tmp_path_factory.mktemp("killed-moves")
    art = template / "artifacts"
    procs = {}
    for name, step in KILL_CASES:
        root = clone(template, base / f"{name}-{step}")
        setup, doomed, _, _ = SCENARIOS[name]
        procs[name, step] = (root, SPAWN.Process(target=_doomed_move, args=(str(root), str(art), setup, doomed, step)))
    # Retrain 1 -> 3 killed after its intent, then the alias is moved or the target deleted meanwhile.
    for name in ("outside", "deleted"):
        root = clone(template, base / f"{name}-meanwhile")
        args = (str(root), str(art), [("promote", "1")], ("promote", "3"), "intent_written")
        procs[name, "intent_written"] = (root, SPAWN.Process(target=_doomed_move, args=args))
    for _, p in procs.values():
        p.start()
    out = {}
    for key, (root, p) in procs.items():
        p.join(180)
        if p.is_alive():  # hung: reported by its test as "did not die at its checkpoint"
            p.kill()
        out[key] = (root, p.exitcode)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "step"), KILL_CASES)
def test_a_process_killed_mid_move_is_rolled_forward_by_the_next_reader(killed_moves, template, scenario, step):
    root = died_at_its_step(*killed_moves[scenario, step])
    _, doomed, before, after = SCENARIOS[scenario]
    # What the crash left: the intent is still in flight for the first two steps.
    left = raw_moves(root)
    assert left[-1].actor == "doomed" and left[-1].to_version == after
    assert left[-1].kind == ("rollback" if doomed[0] == "previous" else "promote")
    assert left[-1].state == ("done" if step == "recorded" else "intent")
    assert raw_alias(root) == (before if step == "intent_written" else after)

    reg = make_registry(root, template / "artifacts")  # a fresh process' view
    moves = reg.history("champion")  # one read settles it
    assert all(m.state in ("done", "aborted") for m in moves), [(m.seq, m.state) for m in moves]
    assert moves[-1].state == "done" and moves[-1].actor == "doomed"
    assert_chain(moves, allow_external=False)
    assert reg.alias_version("champion") == after == moves[-1].to_version
    assert reg.champion().version == after
    assert raw_alias(root) == after
    assert reg.repair() == []

    if scenario == "rollback":  # the lineage keeps walking after the repaired rollback 5 -> 3
        assert reg.rollback(previous=True, reason="again", actor="oncall").to_version == "1"
        with pytest.raises(RefusedError, match="bottom of the lineage") as err:
            reg.rollback(previous=True, reason="once more", actor="oncall")
        assert err.value.code == "no_previous"
        assert reg.alias_version("champion") == "1"
    else:  # and the next move chains on from the repaired one
        nxt = reg.promote("5", reason="next", actor="flow")
        assert nxt.from_version == after
    assert_consistent(reg)


@pytest.mark.slow
def test_an_intent_overtaken_by_an_outside_move_is_aborted_and_the_outside_move_recorded(killed_moves, template):
    from mlflow import MlflowClient

    root = died_at_its_step(*killed_moves["outside", "intent_written"])
    assert raw_moves(root)[-1].state == "intent" and raw_alias(root) == "1"
    MlflowClient(f"sqlite:///{root / 'mlflow.db'}").set_registered_model_alias(MODEL, "champion", "5")
    reg = make_registry(root, template / "artifacts")
    assert reg.alias_version("champion") == "5"  # not rolled forward over the outside move
    pending = reg.history("champion")[-1]
    assert (pending.state, pending.to_version) == ("aborted", "3") and "outside driftline" in pending.note
    move = reg.rollback(previous=True, reason="undo the outside move", actor="oncall")
    assert (move.from_version, move.to_version) == ("5", "1")
    moves = assert_consistent(reg)
    assert [(m.kind, m.state) for m in moves] == [
        ("promote", "done"),
        ("promote", "aborted"),
        ("external", "done"),
        ("rollback", "done"),
    ]


@pytest.mark.slow
def test_an_intent_whose_target_version_was_deleted_does_not_wedge_the_alias(killed_moves, template):
    from mlflow import MlflowClient

    root = died_at_its_step(*killed_moves["deleted", "intent_written"])
    assert raw_moves(root)[-1].state == "intent"
    MlflowClient(f"sqlite:///{root / 'mlflow.db'}").delete_model_version(MODEL, "3")  # cleaned up in the UI
    reg = make_registry(root, template / "artifacts")
    assert reg.alias_version("champion") == "1"
    moves = reg.history("champion")
    assert moves[-1].state == "aborted" and moves[-1].note
    assert reg.promote("5", reason="next", actor="flow").from_version == "1"


# -- 3: a process killed at every step of a registration ---------------------------------------
REG_STEPS = ("model_logged", "before_register", "registered", "recorded")
NEW_KEY = "2026-03-09:retrain:cafe"
NEW_SEED = 42


def _doomed_registration(root: str, art: str, step: str) -> None:
    reg = make_registry(Path(root), Path(art))
    reg.checkpoint_hook = lambda s: os._exit(3) if s == step else None
    register(reg, NEW_KEY, passed=True, seed=NEW_SEED)
    os._exit(0)


@pytest.fixture(scope="module")
def killed_registrations(template, tmp_path_factory) -> dict[str, tuple[Path, int | None]]:
    base = tmp_path_factory.mktemp("killed-registrations")
    art = template / "artifacts"
    procs = {}
    for step in REG_STEPS:
        root = clone(template, base / step)
        procs[step] = (root, SPAWN.Process(target=_doomed_registration, args=(str(root), str(art), step)))
    for _, p in procs.values():
        p.start()
    out = {}
    for step, (root, p) in procs.items():
        p.join(180)
        if p.is_alive():  # hung: reported by its test as "did not die at its checkpoint"
            p.kill()
        out[step] = (root, p.exitcode)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("step", REG_STEPS)
def test_a_process_killed_mid_registration_leaves_one_version_for_the_key(killed_registrations, template, step):
    from mlflow import MlflowClient

    root = died_at_its_step(*killed_registrations[step])
    reg = make_registry(root, template / "artifacts")
    rerun = register(reg, NEW_KEY, passed=True, seed=NEW_SEED)
    assert rerun.created == (step in ("model_logged", "before_register"))

    client = MlflowClient(reg.tracking_uri)
    found = client.search_model_versions(f"name = '{MODEL}' and tags.idempotency_key = '{NEW_KEY}'")
    assert [str(mv.version) for mv in found] == [rerun.version] == ["7"]
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 7
    assert found[0].run_id == rerun.run_id
    assert register(reg, NEW_KEY, passed=True, seed=NEW_SEED) == type(rerun)(rerun.version, rerun.run_id, False)

    record = reg.registration(rerun.version)
    assert record is not None and record.state == "registered" and record.passed
    assert record.run_id == rerun.run_id and record.artifact_sha256
    exp = client.get_experiment_by_name(f"driftline/{MODEL}")
    runs = client.search_runs([exp.experiment_id], f"tags.`driftline.idempotency_key` = '{NEW_KEY}'")
    assert "RUNNING" not in {r.info.status for r in runs}
    assert [r.info.run_id for r in runs if r.info.status == "FINISHED"] == [rerun.run_id]

    x, _ = tiny_data(NEW_SEED)
    loaded = reg.load(version=rerun.version)
    np.testing.assert_array_equal(loaded.predict_proba(x), fit(NEW_SEED).predict_proba(x))
    assert reg.get(rerun.version).gate_status == "passed"
    assert reg.promote(rerun.version, reason="retrained", actor="flow").to_version == rerun.version


# -- 4: many processes, two spellings of the tracking URI, one store -----------------------------
RACERS = 4
MOVES_EACH = 25
# The only refusals a racer may meet: nothing before the champion, or a compare-and-set that lost.
_ACCEPTABLE = {
    "promote": set(),
    "to": set(),
    "previous": {"RefusedError[no_previous]"},
    "cas": {"RefusedError[moved]"},
}


def _racer(
    tracking_uri: str, root: str, art: str, actor: str, seed: int, barrier: Any, out: Any, via: str = "auto"
) -> None:
    reg = make_registry(Path(root), Path(art), tracking_uri)
    if via == "mlflow":  # as an older driftline, or a schema sqlite3 does not serve, would write
        reg._backend_obj = reg._mlflow_backend
    rng = random.Random(seed)
    results: list[dict[str, Any]] = []
    reg.alias_version("champion")  # connect and import before the start line
    results.append({"op": "backend", "ok": True, "via": type(reg._backend).__name__, "changed": False, "seq": 0})
    barrier.wait(120)
    for i in range(MOVES_EACH):
        op = rng.choice(("promote", "promote", "previous", "to", "cas"))
        v = rng.choice(PASSING_VERSIONS)
        reason = f"{actor} #{i} {op} {v}"
        try:
            if op == "promote":
                m = reg.promote(v, reason=reason, actor=actor)
            elif op == "previous":
                m = reg.rollback(previous=True, reason=reason, actor=actor)
            elif op == "to":
                m = reg.rollback(to_version=v, reason=reason, actor=actor)
            else:  # a decision on the champion as just seen: refused if someone moved it meanwhile
                seen = reg.alias_version("champion")
                m = reg.promote(v, reason=reason, actor=actor, expect_from=seen)
            outcome = {"seq": m.seq, "changed": m.changed, "from": m.from_version, "to": m.to_version}
            results.append({"op": op, "ok": True, "reason": reason, **outcome})
        except RefusedError as e:
            results.append({"op": op, "ok": False, "error": f"RefusedError[{e.code}]", "message": str(e)})
        except Exception as e:
            results.append({"op": op, "ok": False, "error": type(e).__name__, "message": str(e)})
    out.put((actor, results))


@pytest.mark.slow
def test_racing_processes_with_different_tracking_uri_spellings_keep_one_chain(store, template, tmp_path):
    art = template / "artifacts"
    bootstrap = make_registry(store, art).promote("1", reason="bootstrap", actor="parent")
    link = tmp_path / "link"
    link.symlink_to(store, target_is_directory=True)
    spellings = [
        f"sqlite:///{store}/mlflow.db",
        f"sqlite:///{store}/mlflow.db",
        f"sqlite:///{store}/./mlflow.db",
        f"sqlite:///{link}/mlflow.db",
    ]
    assert len(spellings) == RACERS
    # Half write MLflow's database through sqlite3 (the embedded default), half through MlflowClient.
    via = ["auto", "mlflow"] * (RACERS // 2)
    barrier, out = SPAWN.Barrier(RACERS), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=_racer, args=(uri, str(store), str(art), f"racer-{i}", 1000 + i, barrier, out, via[i]))
        for i, uri in enumerate(spellings)
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    backends = {r.pop(0)["via"] for r in results.values()}
    expected = {"_MlflowBackend", "_SqliteBackend"} if sqlite_usable(store / "mlflow.db") else {"_MlflowBackend"}
    assert backends == expected

    bad = [(a, r) for a, rs in results.items() for r in rs if not r["ok"] and r["error"] not in _ACCEPTABLE[r["op"]]]
    assert bad == [], f"unexpected errors (TransientError 'busy' included): {bad[:5]}"

    reg = make_registry(store, art)
    moves = reg.history("champion")
    done = assert_chain(moves, allow_external=False)
    assert moves[0].seq == bootstrap.seq
    assert reg.alias_version("champion") == done[-1].to_version
    by_seq = {m.seq: m for m in moves}
    reported = [(a, r) for a, rs in results.items() for r in rs if r["ok"] and r["changed"]]
    counts = Counter(r["seq"] for _, r in reported)
    assert all(n == 1 for n in counts.values()), f"a seq was reported twice: {counts.most_common(3)}"
    for actor, r in reported:
        m = by_seq.get(r["seq"])
        assert m is not None, f"{actor} reported move #{r['seq']}, which is not in the history"
        assert (m.state, m.actor, m.reason, m.from_version, m.to_version) == (
            "done",
            actor,
            r["reason"],
            r["from"],
            r["to"],
        )
    racer_rows = {m.seq for m in moves if m.actor.startswith("racer-") and m.state == "done"}
    assert racer_rows == set(counts), "a done move was recorded that no process reported"
    assert len(counts) >= 10, "the race made too few moves to mean anything"
    for r in (r for rs in results.values() for r in rs if r["ok"] and not r["changed"]):
        assert r["seq"] == 0 and r["from"] == r["to"]


# -- 5a: a failed version stays out whatever its tags say -------------------------------------------
def _forge_tags(client: Any, version: str, how: str) -> None:
    if how == "rewrite":
        client.set_model_version_tag(MODEL, version, "gate.passed", "true")
        client.set_model_version_tag(MODEL, version, "gate.beat_champion", "pass: forged")
        client.set_model_version_tag(MODEL, version, "idempotency_key", "key-1")  # a passing version's key
    elif how == "delete":
        for key in ("gate.passed", "gate.beat_champion"):
            client.delete_model_version_tag(MODEL, version, key)
    else:  # rename: the failing tags move to names no check reads
        for key, value in FAILING_TAGS.items():
            if key.startswith("gate."):
                client.delete_model_version_tag(MODEL, version, key)
                client.set_model_version_tag(MODEL, version, "old_" + key, value)


@pytest.mark.parametrize("how", ["rewrite", "delete", "rename"])
def test_a_failed_version_cannot_be_made_champion_by_editing_its_tags(reg, store, how):
    from mlflow import MlflowClient

    reg.promote("1", reason="bootstrap", actor="flow")
    client = MlflowClient(reg.tracking_uri)
    _forge_tags(client, "2", how)
    assert refusal_reasons(client.get_model_version(MODEL, "2").tags) == []  # the tags now look clean
    assert reg.get("2").gate_status == "failed"
    before = raw_moves(store)
    attempts = [
        lambda: reg.promote("2", reason="tags say ok", actor="mallory"),
        lambda: reg.rollback(to_version="2", reason="tags say ok", actor="mallory"),
        lambda: reg.set_alias("champion", "2", reason="tags say ok", actor="mallory"),
        lambda: reg.set_alias("champion", "4", reason="tags say ok", actor="mallory", kind="rollback"),
    ]
    for attempt in attempts:
        with pytest.raises(RefusedError, match="nothing changed") as err:
            attempt()
        assert err.value.code == "not_promotable" and "gates failed" in str(err.value)
    assert reg.alias_version("champion") == "1" and raw_moves(store) == before

    forced = reg.promote("2", reason="incident override", actor="alice", force=True)
    assert (forced.from_version, forced.to_version, forced.forced) == ("1", "2", True)
    row = reg.history("champion")[-1]
    assert (row.seq, row.forced, row.actor, row.state) == (forced.seq, True, "alice", "done")
    assert "gates failed" in row.note
    pinned = reg.rollback(to_version="4", reason="pin", actor="alice", force=True)
    assert pinned.forced and reg.history("champion")[-1].forced
    # Back to a passing version needs no force, and is not recorded as forced.
    assert not reg.rollback(to_version="1", reason="back", actor="alice").forced
    assert_consistent(reg)


# -- 5b: a version registered by plain MLflow (pickled code) -----------------------------------------
class Payload:
    """Unpickling this runs code: it touches ``marker`` (what an attacker's model would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def _log_foreign(tracking_uri: str, artifacts: Path, marker: Path, monkeypatch) -> str:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("plain-mlflow", artifact_location=artifacts.as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    try:
        with mlflow.start_run(experiment_id=exp):
            info = mlflow.sklearn.log_model(
                Payload(marker),
                name="model",
                serialization_format="cloudpickle",
                registered_model_name=MODEL,
                pip_requirements=["scikit-learn"],
            )
    finally:
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert not marker.exists()
    return str(info.registered_model_version)


def test_a_plain_mlflow_version_is_refused_and_its_code_never_runs(reg, store, tmp_path, monkeypatch):
    import cloudpickle

    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    probe = tmp_path / "probe"
    cloudpickle.loads(cloudpickle.dumps(Payload(probe)))
    assert probe.exists(), "the payload must really run code when unpickled"

    marker = tmp_path / "pwned"
    reg.promote("1", reason="bootstrap", actor="flow")
    foreign = _log_foreign(reg.tracking_uri, tmp_path / "foreign-artifacts", marker, monkeypatch)
    assert foreign == "7"
    assert reg.get(foreign).gate_status == "foreign" and reg.registration(foreign) is None
    for attempt in (
        lambda: reg.promote(foreign, reason="new model", actor="mallory"),
        lambda: reg.rollback(to_version=foreign, reason="new model", actor="mallory"),
        lambda: reg.set_alias("champion", foreign, reason="new model", actor="mallory"),
    ):
        with pytest.raises(RefusedError, match="not registered by driftline") as err:
            attempt()
        assert err.value.code == "not_promotable"
    assert reg.alias_version("champion") == "1"

    forced = reg.promote(foreign, reason="vendor model", actor="alice", force=True)
    assert forced.forced and reg.history("champion")[-1].forced
    assert reg.alias_version("champion") == foreign
    for load in (reg.load, lambda: reg.load(version=foreign)):
        with pytest.raises(RefusedError, match="not registered by driftline") as err:
            load()
        assert err.value.code == "foreign"
    assert not marker.exists()
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in os.environ

    # The lineage may lead back to it, but rollback --previous does not take it there unforced.
    reg.promote("3", reason="retrained", actor="flow")
    with pytest.raises(RefusedError, match="not registered by driftline") as err:
        reg.rollback(previous=True, reason="undo", actor="oncall")
    assert err.value.code == "not_promotable" and reg.alias_version("champion") == "3"
    assert not marker.exists()
    assert_consistent(reg)


def test_a_copy_of_a_driftline_model_registered_outside_is_foreign(reg, monkeypatch):
    from mlflow import MlflowClient

    client = MlflowClient(reg.tracking_uri)
    original = client.get_model_version(MODEL, "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", reg.tracking_uri)  # MLflow resolves models:/m-... globally
    copy = client.create_model_version(MODEL, original.source, run_id=original.run_id, tags=dict(original.tags))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    v = str(copy.version)
    assert copy.source == original.source == reg.registration("1").model_uri  # the very same model files
    assert reg.get(v).gate_status == "foreign"
    with pytest.raises(RefusedError) as err:
        reg.promote(v, reason="same model, isn't it", actor="mallory")
    assert err.value.code == "not_promotable"
    with pytest.raises(RefusedError) as err:
        reg.load(version=v)
    assert err.value.code == "foreign"


# -- 5c: tampered model files ---------------------------------------------------------------------
def _model_dir(reg: ModelRegistry, version: str) -> Path:
    uri = reg.registration(version).model_uri
    assert uri and uri.startswith("models:/")
    found = [p for p in reg.artifact_root.rglob(uri.removeprefix("models:/")) if p.is_dir()]
    assert len(found) == 1, found
    return found[0] / "artifacts"


@pytest.mark.parametrize("how", ["overwrite", "add_file", "edit_mlmodel"])
def test_tampered_model_files_are_refused(reg, how):
    x, _ = tiny_data(7)
    v = register(reg, f"tamper-{how}", passed=True, seed=7).version
    np.testing.assert_array_equal(reg.load(version=v).predict(x), fit(7).predict(x))
    files = _model_dir(reg, v)
    if how == "overwrite":
        model_file = files / "model.skops"
        assert model_file.is_file()
        other = next(_model_dir(reg, "1").glob("model.skops")).read_bytes()  # a valid model, another one
        model_file.write_bytes(other)
    elif how == "add_file":
        (files / "sitecustomize.py").write_text("print('hello')\n")
    else:
        mlmodel = files / "MLmodel"
        mlmodel.write_text(mlmodel.read_text().replace("serialization_format: skops", "serialization_format: pickle"))
    with pytest.raises(DriftlineError, match="do not match"):
        reg.load(version=v)
    reg.promote(v, reason="looked fine", actor="flow")
    with pytest.raises(DriftlineError, match="do not match"):
        reg.load()
    assert reg.load(version="1") is not None  # the untouched versions still load


# -- 5d: an on-call rollback while a flow is deciding ----------------------------------------------
def test_a_flow_decision_taken_before_an_oncall_rollback_is_refused(reg, store, template):
    reg.promote("1", reason="bootstrap", actor="flow")
    reg.promote("3", reason="retrained", actor="flow")
    flow = make_registry(store, template / "artifacts")
    seen = flow.champion().version
    assert seen == "3"  # the flow compares candidate 5 against 3...

    oncall = make_registry(store, template / "artifacts")
    assert oncall.rollback(previous=True, reason="precision dropped", actor="oncall").to_version == "1"

    before = raw_moves(store)
    with pytest.raises(RefusedError) as err:
        flow.promote("5", reason="beats champion 3", actor="flow", expect_from=seen)
    message = str(err.value)
    assert err.value.code == "moved" and "expected 3" in message and "nothing changed" in message
    assert flow.alias_version("champion") == "1" and raw_moves(store) == before
    with pytest.raises(RefusedError) as err:
        flow.rollback(to_version="5", reason="stale", actor="flow", expect_from=seen)
    assert err.value.code == "moved"
    assert_consistent(reg)


# -- 6: the alias moved outside driftline ------------------------------------------------------------
@pytest.mark.parametrize("outside", ["5", "2", None])
def test_an_outside_move_is_recorded_and_the_lineage_keeps_working(reg, outside):
    from mlflow import MlflowClient

    reg.promote("1", reason="bootstrap", actor="flow")
    reg.promote("3", reason="retrained", actor="flow")
    client = MlflowClient(reg.tracking_uri)
    if outside is None:
        client.delete_registered_model_alias(MODEL, "champion")
    else:
        client.set_registered_model_alias(MODEL, "champion", outside)
    assert reg.alias_version("champion") == outside

    if outside is None:
        move = reg.promote("6", reason="after the outside delete", actor="flow")
        assert move.from_version is None
    else:
        move = reg.rollback(previous=True, reason="undo the outside move", actor="oncall")
        assert (move.from_version, move.to_version) == (outside, "3")
    moves = assert_consistent(reg)
    external = [m for m in moves if m.kind == "external"]
    assert len(external) == 1
    ext = external[0]
    assert (ext.actor, ext.from_version, ext.to_version, ext.state) == ("outside driftline", "3", outside, "done")
    assert moves[-1].seq == move.seq and moves[-1].prev_seq == ext.seq

    if outside is None:
        assert reg.rollback(previous=True, reason="undo", actor="oncall").to_version == "3"
    else:
        assert reg.rollback(previous=True, reason="further", actor="oncall").to_version == "1"
    assert_consistent(reg)


# -- a live but stalled writer whose lease ran out ---------------------------------------------------
def _stalled_move(root: str, art: str, flag: str, go: str, lease: float) -> None:
    reg = make_registry(Path(root), Path(art), move_lease=lease)

    def stall(step: str) -> None:
        if step == "intent_written":  # a GC pause, a hung HTTP call to the tracking server...
            Path(flag).touch()
            deadline = time.monotonic() + 120
            while not Path(go).exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    reg.checkpoint_hook = stall
    reg.promote("3", reason="retrained", actor="stalled")


@pytest.mark.slow
def test_a_stalled_writer_whose_lease_expired_does_not_clobber_a_later_move(store, template, tmp_path):
    def precondition(ok: bool, what: str) -> None:
        if not ok:
            pytest.fail(f"precondition failed: {what}")

    art = template / "artifacts"
    reg = make_registry(store, art)
    reg.promote("1", reason="bootstrap", actor="flow")
    flag, go = tmp_path / "stalled", tmp_path / "go"
    lease = 0.5
    proc = SPAWN.Process(target=_stalled_move, args=(str(store), str(art), str(flag), str(go), lease))
    proc.start()
    deadline = time.monotonic() + 120
    while not flag.exists():
        precondition(time.monotonic() < deadline and proc.exitcode is None, "the writer never reached its intent")
        time.sleep(0.05)
    time.sleep(lease + 0.3)
    # The expired intent is rolled forward by this reader, then on-call moves the champion on.
    precondition(reg.alias_version("champion") == "3", "the expired intent was rolled forward")
    precondition(reg.promote("5", reason="on-call fix", actor="oncall").from_version == "3", "on-call moved 3 -> 5")
    go.touch()  # the stalled writer wakes up
    proc.join(120)
    precondition(proc.exitcode == 0, f"the stalled writer exited with {proc.exitcode}")
    moves = reg.store.moves(MODEL, "champion")
    precondition([m.to_version for m in moves if m.state == "done"] == ["1", "3", "5"], "history is 1, 3, 5")
    assert raw_alias(store) == "5", "the stalled writer's late set_alias moved the champion back to 3"
    assert_consistent(reg)
