"""ModelRegistry against real MLflow on SQLite under tmp_path: registration, aliases, history, repair."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from driftline.errors import DriftlineError, RefusedError
from driftline.registry import (
    RUN_TAG_KEY,
    TAG_LAST_MOVE,
    AliasMove,
    DatasetInput,
    ModelRegistry,
    Verdict,
    previous_holder,
    refusal_reasons,
)

MODEL = "churn"
PASSING = {"trigger": "bootstrap", "gate.passed": "true", "gate.beat_champion": "pass: no champion yet"}
FAILING = {
    "trigger": "drift",
    "gate.passed": "false",
    "gate.beat_champion": "fail: candidate 0.41 < champion 0.45 + 0.0",
}


class SimulatedCrash(BaseException):
    """Raised by a checkpoint hook: stops a write between two steps, as a crash would."""


def crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise SimulatedCrash(step)

    return hook


def tiny_data(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 20), "sessions": rng.uniform(0, 10, 20)})
    y = pd.Series((x["sessions"] + rng.normal(0, 1, 20) < 5).astype(int), name="churned")
    return x, y


def register(reg: ModelRegistry, key: str, tags: dict, seed: int = 0, **extra):
    x, y = tiny_data(seed)
    model = LogisticRegression().fit(x, y)
    passed = tags.get("gate.passed", "true") == "true"
    kwargs = dict(
        verdict=Verdict(gates_passed=passed, reasons=() if passed else ("beat_champion: 0.41 < 0.45",)),
        pipeline=model,
        input_example=x.head(3),
        params={"C": 1.0, "seed": seed},
        metrics={"test.average_precision": 0.5 + seed / 100},
        tags=tags,
        artifacts={"contract.json": {"name": "tiny"}},
        idempotency_key=key,
    )
    kwargs.update(extra)
    return reg.register_candidate(**kwargs)


def state(reg: ModelRegistry) -> tuple[dict, dict, list]:
    """Aliases, registered-model tags and the stored history: everything an alias move may change."""
    s = reg._backend.model_state()
    return dict(s.aliases), dict(s.tags), reg.store.moves(MODEL)


def make_registry(root: Path) -> ModelRegistry:
    return ModelRegistry(
        f"sqlite:///{root / 'mlflow.db'}", MODEL, root / "artifacts", store_url=f"sqlite:///{root / 'store.db'}"
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """A store with versions 1 (passing), 2 (failed gates), 3 (passing) and no aliases."""
    root = tmp_path_factory.mktemp("registry-template")
    reg = make_registry(root)
    for i, tags in enumerate((PASSING, FAILING, PASSING), start=1):
        assert register(reg, f"key-{i}", tags, seed=i).version == str(i)
    reg.store.dispose()  # the last connection checkpoints the WAL into store.db, so a copy holds everything
    return root


@pytest.fixture
def reg(template, tmp_path) -> ModelRegistry:
    """A private copy of the template store (aliases and history start empty)."""
    root = tmp_path / "store"
    root.mkdir()
    shutil.copyfile(template / "mlflow.db", root / "mlflow.db")
    shutil.copyfile(template / "store.db", root / "store.db")
    return make_registry(root)


# -- registration -----------------------------------------------------------------------------
def test_register_logs_everything_and_rerun_with_same_key_returns_the_same_version(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    reg = make_registry(tmp_path)
    x, y = tiny_data()
    model = LogisticRegression().fit(x, y)
    reference = tmp_path / "profile.json"
    reference.write_text('{"bins": [0, 1, 2]}')
    tags = {
        "trigger": "bootstrap",
        "windows": {"train": ["2026-01-05", "2026-03-02"], "test": ["2026-03-02", "2026-03-09"]},
        "parent_version": "",
        "test.average_precision": 0.8125,
    }
    first = reg.register_candidate(
        verdict=Verdict(gates_passed=True, code_version="abc"),
        pipeline=model,
        input_example=x.head(3),
        params={"C": 1.0, "estimator": "logistic_regression"},
        metrics={"test.average_precision": 0.8125, "backtest.mean": 0.75},
        tags=tags,
        artifacts={
            "contract.json": {"name": "tiny"},
            "notes/decision.md": "retrained",
            "reference_profile.json": reference,
        },
        datasets=[(x.assign(churned=y), "train", "training"), DatasetInput(x.head(5), "test", "testing")],
        idempotency_key="2026-03-09:abc123:deadbeef",
        run_name="bootstrap",
        target="churned",
    )
    assert first.created and first.version == "1"

    again = register(reg, "2026-03-09:abc123:deadbeef", {"trigger": "schedule"}, seed=7)
    assert again == type(first)(version="1", run_id=first.run_id, created=False)

    client = MlflowClient(reg.tracking_uri)
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    exp = client.get_experiment_by_name(f"driftline/{MODEL}")
    assert exp.artifact_location == (tmp_path / "artifacts" / MODEL).resolve().as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [first.run_id]  # the rerun logged nothing

    info = reg.get("1")
    assert info.tags == {
        "trigger": "bootstrap",
        "windows": json.dumps(tags["windows"], sort_keys=True),
        "parent_version": "",
        "test.average_precision": "0.8125",
        "idempotency_key": "2026-03-09:abc123:deadbeef",
    }
    assert info.metrics == {"test.average_precision": 0.8125, "backtest.mean": 0.75}
    assert info.metric("average_precision") == 0.8125
    assert info.run_id == first.run_id and info.aliases == ()

    run = client.get_run(first.run_id)
    assert run.data.params == {"C": "1.0", "estimator": "logistic_regression"}
    assert run.data.tags[RUN_TAG_KEY] == "2026-03-09:abc123:deadbeef"
    inputs = {
        (d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"]) for d in run.inputs.dataset_inputs
    }
    assert inputs == {("train", "training"), ("test", "testing")}
    train_ds = next(d.dataset for d in run.inputs.dataset_inputs if d.dataset.name == "train")
    assert json.loads(train_ds.profile)["num_rows"] == 20

    assert sorted(p for p, _ in reg.list_artifacts("1")) == [
        "contract.json",
        "notes/decision.md",
        "reference_profile.json",
    ]
    assert reg.read_artifact_json("1", "contract.json") == {"name": "tiny"}
    assert reg.download_artifact("1", "notes/decision.md").read_text() == "retrained"
    assert reg.download_artifact("1", "reference_profile.json").read_bytes() == reference.read_bytes()

    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", reg.tracking_uri)  # for MLflow's own look-ups below
    model_info = mlflow.models.get_model_info("models:/churn/1")
    assert model_info.signature.inputs.input_names() == ["tenure_days", "sessions"]
    assert model_info.saved_input_example_info is not None
    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/churn/1")).read_text().split()
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert f"pandas=={pd.__version__}" in requirements

    # MLflow's own pyfunc serves scores (predict_proba), and takes ints and floats alike.
    pyfunc = mlflow.pyfunc.load_model("models:/churn/1")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(x)), model.predict_proba(x))
    as_ints = x.round().astype("int64")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(as_ints)), model.predict_proba(as_ints))

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    loaded = reg.load(version="1")
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    # MLflow's process-wide URIs (and the env vars subprocesses inherit) are left as they were.
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert reg.find_by_key("2026-03-09:abc123:deadbeef") == again
    assert reg.find_by_key("other") is None
    # What driftline trusts is in its store, not in the version's tags.
    record = reg.registration("1")
    assert (record.state, record.run_id, record.gates_passed, record.code_version) == (
        "registered",
        first.run_id,
        True,
        "abc",
    )
    assert record.serialization == "skops" and len(record.artifact_sha256) == 64
    assert info.gate_status == "passed" and info.registered_by_driftline


def test_crash_after_the_run_finished_registers_that_run_on_rerun(tmp_path):
    from mlflow import MlflowClient

    reg = make_registry(tmp_path)
    reg.checkpoint_hook = crash_at("before_register")
    with pytest.raises(SimulatedCrash):
        register(reg, "k", PASSING)
    assert reg.list_versions() == []

    reg.checkpoint_hook = None
    rerun = register(reg, "k", PASSING)
    client = MlflowClient(reg.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(f"driftline/{MODEL}").experiment_id])
    assert len(runs) == 1 and rerun.run_id == runs[0].info.run_id
    assert rerun.created and [v.version for v in reg.list_versions()] == ["1"]


def test_crash_after_registering_returns_the_version_on_rerun(tmp_path):
    reg = make_registry(tmp_path)
    reg.checkpoint_hook = crash_at("registered")
    with pytest.raises(SimulatedCrash):
        register(reg, "k", PASSING)
    reg.checkpoint_hook = None
    rerun = register(reg, "k", PASSING)
    assert (rerun.version, rerun.created) == ("1", False)
    assert [v.version for v in reg.list_versions()] == ["1"]


def _register_then_die(root: str, step: str) -> None:
    reg = make_registry(Path(root))

    def die(name: str) -> None:
        if name == step:
            os._exit(3)

    reg.checkpoint_hook = die
    register(reg, "k", PASSING)


@pytest.mark.slow
def test_process_killed_while_logging_leaves_no_duplicate(tmp_path):
    from mlflow import MlflowClient

    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_register_then_die, args=(str(tmp_path), "model_logged"))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 3

    reg = make_registry(tmp_path)
    rerun = register(reg, "k", PASSING)
    assert rerun.created and [v.version for v in reg.list_versions()] == ["1"]
    client = MlflowClient(reg.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(f"driftline/{MODEL}").experiment_id])
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert statuses.pop(rerun.run_id) == "FINISHED"
    assert list(statuses.values()) == ["KILLED"]  # the dead process's run, closed by the rerun


def test_bad_registration_inputs(tmp_path):
    reg = make_registry(tmp_path)
    with pytest.raises(DriftlineError, match="idempotency key"):
        register(reg, "it's", PASSING)
    with pytest.raises(DriftlineError, match="relative path"):
        register(reg, "k", PASSING, artifacts={"../escape.json": {}})
    with pytest.raises(DriftlineError, match="not found"):
        register(reg, "k", PASSING, artifacts={"x.txt": tmp_path / "missing.txt"})


# -- aliases, promote, rollback, history -------------------------------------------------------
def test_promote_refuses_failed_versions_unless_forced(reg):
    reg.promote("1", reason="bootstrap", actor="alice")
    before = state(reg)
    with pytest.raises(RefusedError) as err:
        reg.promote("2", reason="try it", actor="alice")
    message = str(err.value)
    assert "version 2 may not become champion: its gates failed (beat_champion: 0.41 < 0.45)" in message
    assert err.value.code == "not_promotable" and "nothing changed" in message and "\n" not in message
    assert state(reg) == before

    move = reg.promote("2", reason="override", actor="alice", force=True)
    assert (move.from_version, move.to_version, move.forced) == ("1", "2", True)
    assert move.note.startswith("forced past: its gates failed")
    assert reg.champion().version == "2"
    assert reg.history()[-1].forced
    # The registered model carries one line about the last move, no history records.
    tags = state(reg)[1]
    assert (
        tags[TAG_LAST_MOVE].startswith("#2 ") and "champion: 1 -> 2 by alice (forced): override" in tags[TAG_LAST_MOVE]
    )
    assert not [k for k in tags if k.startswith("alias_history")]


def test_refusal_reasons_reads_gate_validation_and_skew_tags():
    assert refusal_reasons({"gate.passed": "true", "gate.beat_champion": "pass: ok", "trigger": "failed"}) == []
    assert refusal_reasons({"validation.status": "failed", "skew.status": "FAIL", "gate.x": "error: boom"}) == [
        "gate.x=error: boom",
        "skew.status=FAIL",
        "validation.status=failed",
    ]


def test_promote_rollback_and_history(reg):
    assert reg.champion() is None
    moves = [
        reg.promote("1", reason="bootstrap", actor="flow-run-1"),
        reg.promote("3", reason="beats champion", actor="flow-run-2"),
        reg.promote("3", "challenger", reason="shadow", actor="bob"),
        reg.rollback(previous=True, reason="precision dropped 12%", actor="bob"),
    ]
    assert [(m.from_version, m.to_version, m.kind) for m in moves] == [
        (None, "1", "promote"),
        ("1", "3", "promote"),
        (None, "3", "promote"),
        ("3", "1", "rollback"),
    ]
    champion = reg.champion()
    assert champion.version == "1" and champion.aliases == ("champion",)
    assert reg.get("3").aliases == ("challenger",)

    history = reg.history()
    assert [m.seq for m in history] == [1, 2, 3, 4]
    assert [m.state for m in history] == ["done"] * 4
    assert [(m.actor, m.alias, m.reason) for m in history] == [
        ("flow-run-1", "champion", "bootstrap"),
        ("flow-run-2", "champion", "beats champion"),
        ("bob", "challenger", "shadow"),
        ("bob", "champion", "precision dropped 12%"),
    ]
    assert [m.when for m in history] == sorted(m.when for m in history)
    assert [m.seq for m in reg.history("challenger")] == [3]
    assert history == moves  # what was returned is what was stored

    # --previous undid the promotion of 3: from 1 there is nothing further back.
    with pytest.raises(RefusedError, match="bottom of the lineage"):
        reg.rollback(previous=True, reason="again", actor="bob")
    with pytest.raises(RefusedError, match="version 2 may not become champion: its gates failed"):
        reg.rollback(to_version="2", reason="pin", actor="carol")  # a failed version, on every path
    to_n = reg.rollback(to_version="2", reason="pin", actor="carol", force=True)
    assert (to_n.from_version, to_n.to_version, to_n.seq, to_n.forced) == ("1", "2", 5, True)
    assert reg.rollback(previous=True, reason="undo pin", actor="carol").to_version == "1"

    # Moving an alias where it already points changes and records nothing.
    noop = reg.rollback(to_version="1", reason="same", actor="carol")
    assert not noop.changed and len(reg.history()) == 6


def test_previous_holder_replays_the_history_as_an_undo_stack():
    def mv(seq: int, frm: str | None, to: str, kind: str = "promote", state: str = "done") -> AliasMove:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return AliasMove(seq, when, "a", "champion", frm, to, "r", kind=kind, state=state)

    chain = [mv(1, None, "1"), mv(2, "1", "2"), mv(3, "2", "3")]
    assert previous_holder(chain, "champion", "3") == "2"
    after_rollback = [*chain, mv(4, "3", "2", "rollback")]
    assert previous_holder(after_rollback, "champion", "2") == "1"  # further back, not to 3
    repromoted = [*after_rollback, mv(5, "2", "3")]
    assert previous_holder(repromoted, "champion", "3") == "2"
    # A rollback to a named version that is not the one below pushes it: --previous undoes it.
    pinned = [*chain, mv(4, "3", "1", "rollback")]
    assert previous_holder(pinned, "champion", "1") == "3"
    # The alias was moved outside driftline: the last recorded holder is where to go back to...
    assert previous_holder(chain, "champion", "9") == "3"
    # ...and a later recorded move from that outside holder keeps it in the stack.
    assert previous_holder([*chain, mv(4, "9", "3")], "champion", "3") == "9"
    # Aborted or in-flight moves never count; neither do other aliases.
    assert previous_holder([mv(1, None, "1"), mv(2, "1", "5", state="aborted")], "champion", "1") is None
    assert previous_holder(chain, "challenger", "3") is None
    # A history that starts mid-way (alias set before driftline recorded) still knows the first holder.
    assert previous_holder([mv(7, "4", "6")], "champion", "6") == "4"


def test_bad_alias_inputs_change_nothing(reg):
    reg.promote("1", reason="bootstrap", actor="a")
    before = state(reg)
    cases = [
        (lambda: reg.promote("99", reason="x", actor="a"), "model 'churn' has no version 99"),
        (lambda: reg.promote("abc", reason="x", actor="a"), "version must be a positive whole number, got 'abc'"),
        (lambda: reg.promote("1", "staging", reason="x", actor="a"), "unknown alias 'staging'"),
        (lambda: reg.promote("3", reason=" ", actor="a"), "reason must not be empty"),
        (lambda: reg.rollback(previous=True, reason="x", actor="a"), "bottom of the lineage"),
        (lambda: reg.promote("2", reason="x", actor="a"), "its gates failed"),
        (lambda: reg.set_alias("challenger", "2", reason="x", actor="a"), "its gates failed"),
        (lambda: reg.rollback(reason="x", actor="a"), "exactly one target"),
        (lambda: reg.rollback(to_version="0", reason="x", actor="a"), "positive whole number"),
        (lambda: reg.set_alias("champion", "3", reason="x", actor="a", expect_from="2"), "expected 2"),
    ]
    for call, message in cases:
        with pytest.raises(DriftlineError, match=message):
            call()
    assert state(reg) == before


def test_missing_store_and_missing_model(tmp_path):
    reg = make_registry(tmp_path / "nowhere")
    assert reg.champion() is None and reg.list_versions() == [] and reg.history() == []
    with pytest.raises(DriftlineError, match="no MLflow database at"):
        reg.rollback(previous=True, reason="x", actor="a")
    assert not (tmp_path / "nowhere" / "mlflow.db").exists()
    with pytest.raises(DriftlineError, match="has no alias 'champion' yet"):
        reg.load()


def test_unreachable_server_is_one_line(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    reg = ModelRegistry(f"http://127.0.0.1:{port}", MODEL, store_url="sqlite://")
    for call in (
        lambda: reg.rollback(previous=True, reason="x", actor="a"),
        lambda: reg.promote("1", reason="x", actor="a"),
        reg.list_versions,
    ):
        with pytest.raises(DriftlineError, match=rf"MLflow at http://127.0.0.1:{port} is unreachable") as err:
            call()
        assert "\n" not in str(err.value)


# -- crash between the steps of an alias move ---------------------------------------------------
@pytest.mark.parametrize("step", ["intent_written", "alias_moved", "recorded"])
def test_crash_mid_move_is_finished_by_the_next_call(reg, step):
    reg.promote("1", reason="bootstrap", actor="a")
    reg.checkpoint_hook = crash_at(step)
    with pytest.raises(SimulatedCrash):
        reg.promote("3", reason="better", actor="a")

    fresh = make_registry(Path(reg.tracking_uri.removeprefix("sqlite:///")).parent)  # another caller's view
    raw = fresh.store.moves(MODEL)[-1]
    assert (raw.seq, raw.state, raw.to_version) == (2, "done" if step == "recorded" else "intent", "3")
    # The next registry call — a read — settles it: the move was checked before the crash, so it is finished.
    assert fresh.alias_version("champion") == "3"
    last = fresh.history()[-1]
    assert (last.seq, last.state, last.to_version) == (2, "done", "3")
    assert (last.note.startswith("completed by repair")) == (step != "recorded")
    assert fresh.repair() == []
    nxt = fresh.rollback(previous=True, reason="next", actor="b")
    done = [m for m in fresh.history() if m.state == "done"]
    assert (nxt.seq, nxt.to_version) == (3, "1") and all(a.to_version == b.from_version for a, b in pairwise(done))


def test_crashed_bootstrap_still_leaves_a_champion(reg):
    reg.checkpoint_hook = crash_at("intent_written")
    with pytest.raises(SimulatedCrash):
        reg.promote("1", reason="bootstrap", actor="a")
    reg.checkpoint_hook = None
    assert reg.champion().version == "1"
    assert [(m.seq, m.state, m.from_version) for m in reg.history()] == [(1, "done", None)]


def test_a_failed_alias_move_is_aborted_not_replayed(reg, monkeypatch):
    reg.promote("1", reason="bootstrap", actor="a")

    def refuse(alias, version):
        raise DriftlineError("MLflow answered 500")

    monkeypatch.setattr(reg._backend, "set_alias", refuse)
    with pytest.raises(DriftlineError, match="500"):
        reg.promote("3", reason="better", actor="a")
    monkeypatch.undo()
    assert reg.alias_version("champion") == "1"
    assert [(m.seq, m.state) for m in reg.history()] == [(1, "done"), (2, "aborted")]
    assert reg.promote("3", reason="retried", actor="a").seq == 3


def _promote_then_die(db_root: str) -> None:
    reg = make_registry(Path(db_root))
    reg.checkpoint_hook = lambda step: os._exit(3) if step == "alias_moved" else None
    reg.promote("3", reason="better", actor="doomed")


@pytest.mark.slow
def test_process_killed_between_alias_move_and_record(reg):
    reg.promote("1", reason="bootstrap", actor="a")
    root = Path(reg.tracking_uri.removeprefix("sqlite:///")).parent
    proc = mp.get_context("spawn").Process(target=_promote_then_die, args=(str(root),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 3
    assert reg.store.moves(MODEL)[-1].state == "intent"
    # The dead process holds nothing: the next call settles its intent at once, no lease wait.
    reg.lock_timeout = 5
    assert [(m.seq, m.state) for m in reg.repair()] == [(2, "done")]
    assert reg.rollback(previous=True, reason="undo", actor="a").to_version == "1"


# -- two processes at once ----------------------------------------------------------------------
Plan = list[list[tuple[str, str | None]]]  # rounds of (operation, version); all processes start each round together


def _race(root: str, actor: str, barrier, rounds: Plan, out) -> None:
    reg = make_registry(Path(root))
    results = []
    for ops in rounds:
        barrier.wait()
        for op, arg in ops:
            try:
                if op == "promote":
                    move = reg.promote(arg, reason=f"{actor} promotes", actor=actor)
                elif op == "to":
                    move = reg.rollback(to_version=arg, reason=f"{actor} pins", actor=actor)
                elif op == "previous":
                    move = reg.rollback(previous=True, reason=f"{actor} undoes", actor=actor)
                else:  # "cas": a decision taken on the champion both processes saw (version 1)
                    move = reg.set_alias("champion", arg, reason=f"{actor} cas", actor=actor, expect_from="1")
                results.append((op, "ok", move.seq, move.changed))
            except DriftlineError as e:
                results.append((op, "error", str(e), False))
    out.put((actor, results))


def _assert_consistent(reg: ModelRegistry) -> list[AliasMove]:
    history = reg.history("champion")
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    assert [m.prev_seq for m in history] == [0, *[m.seq for m in history[:-1]]]
    assert {m.state for m in history} == {"done"}
    assert history[0].from_version is None
    assert all(a.to_version == b.from_version for a, b in pairwise(history))
    assert reg.alias_version("champion") == history[-1].to_version
    return history


@pytest.mark.slow
def test_two_processes_moving_the_champion_at_once_stay_consistent(reg):
    reg.promote("1", reason="bootstrap", actor="parent")
    root = Path(reg.tracking_uri.removeprefix("sqlite:///")).parent
    plans: dict[str, Plan] = {
        "proc-a": [
            [("cas", "3")],
            [("promote", "1"), ("promote", "3"), ("previous", None), ("promote", "3"), ("to", "1")],
        ],
        "proc-b": [[("cas", "3")], [("to", "3"), ("promote", "1"), ("previous", None), ("to", "3"), ("promote", "1")]],
    }
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(plans)), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(root), a, barrier, r, out)) for a, r in plans.items()]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0

    # Round 1: both took their decision on champion = 1; exactly one move applies.
    cas = sorted(rs[0][1:] for rs in results.values())
    assert [c[0] for c in cas] == ["error", "ok"]
    assert "expected 1" in cas[0][1] and "nothing changed" in cas[0][1]
    # Round 2: every reported move is recorded exactly once and the records chain.
    history = _assert_consistent(reg)
    reported = sorted(r[2] for rs in results.values() for r in rs if r[1] == "ok" and r[3])
    assert reported == [m.seq for m in history[1:]]
    errors = [r[2] for rs in results.values() for r in rs if r[1] == "error" and r[0] != "cas"]
    assert all("bottom of the lineage" in e for e in errors)
