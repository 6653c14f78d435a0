"""The sqlite3 path to MLflow's embedded registry answers and writes exactly as ``MlflowClient`` does.

Every call of ``_SqliteBackend`` is compared with the ``MlflowClient`` backend on one real MLflow
SQLite database (versions with tags, a NaN metric, nested artifacts, a version deleted through
MLflow, a version and an alias made with MLflow's own client). Writes made through sqlite3 are
read back through MLflow. The schema guard sends unknown revisions and MLflow workspaces to
MLflow, and ``models list | show | rollback`` run in a fresh interpreter without importing MLflow.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from driftline.errors import DriftlineError, TransientError
from driftline.registry import ModelRegistry, Verdict
from driftline.registry import sqlite as sq
from driftline.registry.backends import _MlflowBackend, _NotFoundError
from driftline.registry.sqlite import _SqliteBackend

MODEL = "churn-sql"


def _fit(seed: int) -> tuple[Any, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 30), "sessions": rng.uniform(0, 10, 30)})
    y = (x["sessions"] + rng.normal(0, 1, 30) < 5).astype(int)
    return LogisticRegression().fit(x, y), x


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    """One registry: versions 1-4 by driftline (3 deleted through MLflow), 5 by plain MLflow."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("sqlreg")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reg = ModelRegistry(uri, MODEL, root / "art", store_url=f"sqlite:///{root / 'store.db'}")
    for i in (1, 2, 3, 4):
        model, x = _fit(i)
        reg.register_candidate(
            pipeline=model,
            input_example=x.head(3),
            params={"C": 1.0},
            metrics={"test.average_precision": 0.5 + i / 100, "test.odd": float("nan") if i == 2 else 1.0},
            tags={"trigger": "schedule", "gate.passed": "true", "note": "ünïcode ✓" if i == 2 else "plain"},
            artifacts={"contract.json": {"name": "tiny"}, "reports/week/summary.json": {"i": i}},
            verdict=Verdict(gates_passed=True),
            idempotency_key=f"sql-{i}",
        )
    reg.promote("2", reason="setup", actor="test")
    reg.promote("4", reason="setup", actor="test", alias="challenger")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.delete_model_version(MODEL, "3")
    run = client.create_run(client.get_experiment_by_name(f"driftline/{MODEL}").experiment_id)
    client.set_terminated(run.info.run_id)
    source = f"{run.info.artifact_uri}/model"
    mv = client.create_model_version(MODEL, source, run_id=run.info.run_id, tags={"by": "hand"})
    client.set_registered_model_alias(MODEL, "by-hand", mv.version)
    client.set_registered_model_tag(MODEL, "team", "risk")
    db = root / "mlflow.db"
    return {"root": root, "uri": uri, "db": db, "reg": reg, "client": client}


def backends(built: dict[str, Any], name: str = MODEL) -> tuple[_SqliteBackend, _MlflowBackend]:
    mlflow_backend = _MlflowBackend(built["uri"], name)
    return _SqliteBackend(built["db"], name, lambda: mlflow_backend), mlflow_backend


def same_metrics(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def test_the_embedded_default_is_served_by_sqlite3_when_the_schema_is_known(built):
    from mlflow.store.db.utils import _get_latest_schema_revision

    revision = sq.schema_revision(built["db"])
    assert revision is not None and revision == _get_latest_schema_revision()
    fresh = ModelRegistry(built["uri"], MODEL, store_url=f"sqlite:///{built['root'] / 'store.db'}")
    expected = _SqliteBackend if revision in sq.KNOWN_REVISIONS else _MlflowBackend
    assert type(fresh._backend) is expected
    assert sq.usable(built["db"]) is (revision in sq.KNOWN_REVISIONS)


def test_every_read_equals_mlflow_client(built):
    fast, slow = backends(built)
    a, b = fast.model_state(), slow.model_state()
    assert a == b and a.aliases == {"champion": "2", "challenger": "4", "by-hand": "5"} and a.tags["team"] == "risk"
    listed_fast = sorted(fast.search_versions(), key=lambda d: int(d.version))
    listed_slow = sorted(slow.search_versions(), key=lambda d: int(d.version))
    assert [d.version for d in listed_fast] == ["1", "2", "4", "5"]  # 3 was deleted through MLflow
    for d_fast, d_slow in zip(listed_fast, listed_slow, strict=True):
        assert (d_fast.version, d_fast.run_id, d_fast.tags, d_fast.created_ms, d_fast.source, d_fast.status) == (
            d_slow.version,
            d_slow.run_id,
            d_slow.tags,
            d_slow.created_ms,
            d_slow.source,
            d_slow.status,
        )
        one_fast, one_slow = fast.version(d_fast.version), slow.version(d_fast.version)
        assert one_fast == d_fast and sorted(one_fast.aliases) == sorted(one_slow.aliases)
        assert (one_fast.run_id, one_fast.tags, one_fast.created_ms, one_fast.source, one_fast.status) == (
            one_slow.run_id,
            one_slow.tags,
            one_slow.created_ms,
            one_slow.source,
            one_slow.status,
        )
        assert same_metrics(fast.run_metrics(d_fast.run_id), slow.run_metrics(d_fast.run_id))
        assert fast.list_artifacts(d_fast.run_id) == slow.list_artifacts(d_fast.run_id)
    assert fast.version("2").tags["note"] == "ünïcode ✓" and fast.version("4").aliases == ("challenger",)
    assert math.isnan(fast.run_metrics(fast.version("2").run_id)["test.odd"])
    paths = [p for p, _ in fast.list_artifacts(fast.version("1").run_id)]
    assert {"contract.json", "reports/week/summary.json"} <= set(paths)
    assert fast.list_artifacts(fast.version("5").run_id) == []  # a run with nothing logged


def test_missing_things_are_not_found_on_both_paths(built):
    fast, slow = backends(built)
    for call in (
        lambda b: b.version("3"),  # deleted through MLflow
        lambda b: b.version("99"),
        lambda b: b.run_metrics("0" * 32),
    ):
        for backend in (fast, slow):
            with pytest.raises(_NotFoundError):
                call(backend)
    ghost_fast, ghost_slow = backends(built, "no-such-model")
    for backend in (ghost_fast, ghost_slow):
        with pytest.raises(_NotFoundError):
            backend.model_state()
    with pytest.raises(_NotFoundError):
        fast.set_alias("champion", "3")  # MLflow refuses an alias on a deleted version too
    with pytest.raises(_NotFoundError):
        ghost_fast.set_model_tag("k", "v")
    assert fast.model_state().aliases["champion"] == "2"


def test_writes_through_sqlite3_are_what_mlflow_reads(built):
    fast, slow = backends(built)
    client = built["client"]
    before = fast.model_state()
    try:
        fast.set_alias("champion", "1")
        fast.set_alias("scratch", "4")
        fast.set_model_tag("driftline.last_move", "champion: 2 -> 1")
        rm = client.get_registered_model(MODEL)
        assert {a: str(v) for a, v in rm.aliases.items()}["champion"] == "1"
        assert str(client.get_model_version_by_alias(MODEL, "scratch").version) == "4"
        assert rm.tags["driftline.last_move"] == "champion: 2 -> 1"
        fast.delete_alias("scratch")
        fast.delete_alias("never-set")  # deleting an absent alias is a no-op, as in MLflow
        assert "scratch" not in (client.get_registered_model(MODEL).aliases or {})
        assert fast.model_state() == slow.model_state()
    finally:
        fast.set_alias("champion", before.aliases["champion"])
        fast.set_model_tag("driftline.last_move", before.tags.get("driftline.last_move", ""))
    with pytest.raises(DriftlineError, match="key must be 1-250"):
        fast.set_model_tag("k" * 251, "v")


def test_a_busy_database_is_transient_and_changes_nothing(built, monkeypatch):
    fast, _ = backends(built)
    monkeypatch.setattr(sq, "BUSY_TIMEOUT_S", 0.2)
    with closing(sqlite3.connect(built["db"], isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientError, match="is busy"):
                fast.set_alias("champion", "1")
        finally:
            other.execute("ROLLBACK")
    assert fast.model_state().aliases["champion"] == "2"


def test_unknown_schemas_and_workspaces_go_through_mlflow(built, tmp_path, monkeypatch):
    copy = tmp_path / "mlflow.db"
    with closing(sqlite3.connect(built["db"])) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    assert sq.usable(copy) is sq.usable(built["db"])
    with closing(sqlite3.connect(copy)) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        con.commit()
    assert not sq.usable(copy)
    with closing(sqlite3.connect(copy)) as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (sq.schema_revision(built["db"]),))
        con.execute("INSERT INTO registered_models (name, workspace) VALUES ('elsewhere', 'team-b')")
        con.commit()
    assert not sq.usable(copy)  # models outside the default workspace: MLflow's own refusal applies
    reg = ModelRegistry(f"sqlite:///{copy}", MODEL, store_url=f"sqlite:///{tmp_path / 'store.db'}")
    assert type(reg._backend) is _MlflowBackend
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert not sq.usable(built["db"])
    monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES")
    assert not sq.usable(tmp_path / "absent.db") and not (tmp_path / "absent.db").exists()
    not_mlflow = tmp_path / "other.db"
    with closing(sqlite3.connect(not_mlflow)) as con:
        con.execute("CREATE TABLE t (x)")
    assert sq.schema_revision(not_mlflow) is None and not sq.usable(not_mlflow)


def test_artifact_uris_and_the_local_walk(tmp_path):
    assert sq.local_artifact_dir("file:///a/b%20c/artifacts") == Path("/a/b c/artifacts")
    assert sq.local_artifact_dir("/plain/path") == Path("/plain/path")
    for remote in ("s3://bucket/x", "mlflow-artifacts:/1/abc/artifacts", "file://otherhost/x", ""):
        assert sq.local_artifact_dir(remote) is None, remote
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "z.txt").write_text("zz")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "c.txt").write_text("ccc")
    (tmp_path / ".artifact.uploading.x").write_text("partial")
    assert sq.walk_local_artifacts(tmp_path) == [("a.txt", 1), ("b/c/z.txt", 2), ("c.txt", 3)]
    assert sq.walk_local_artifacts(tmp_path / "missing") == []


def _probe(argv: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('mlflow loaded:', 'mlflow' in sys.modules, file=sys.stderr))\n"
        "from driftline.cli import main\n"
        f"sys.argv = ['driftline', '--config', {str(config)!r}, *{argv!r}]\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_models_list_show_and_rollback_do_not_import_mlflow(built, tmp_path):
    import shutil

    import yaml

    home = tmp_path / "home"
    home.mkdir()
    for name in ("mlflow.db", "store.db"):
        with closing(sqlite3.connect(built["root"] / name)) as src, closing(sqlite3.connect(home / name)) as dst:
            src.backup(dst)
    shutil.copytree(built["root"] / "art", home / "mlartifacts")
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({"home": str(home), "model_name": MODEL}))
    if not sq.usable(home / "mlflow.db"):
        pytest.skip(f"MLflow's schema {sq.schema_revision(home / 'mlflow.db')} is not one sqlite3 serves")
    listed = _probe(["models", "list", "--json"], config)
    assert listed.returncode == 0, listed.stderr
    assert [v["version"] for v in json.loads(listed.stdout)] == ["1", "2", "4", "5"]
    shown = _probe(["models", "show", "2", "--json"], config)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["aliases"] == ["champion"] and "contract.json" in [a["path"] for a in info["artifacts"]]
    rolled = _probe(["models", "rollback", "--to", "1", "--reason", "probe"], config)
    assert rolled.returncode == 0, rolled.stderr
    assert "champion: version 2 -> version 1 (rollback" in rolled.stdout
    for done in (listed, shown, rolled):
        assert done.stderr.strip().splitlines()[-1] == "mlflow loaded: False", done.stderr
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    assert str(MlflowClient(uri, uri).get_model_version_by_alias(MODEL, "champion").version) == "1"
