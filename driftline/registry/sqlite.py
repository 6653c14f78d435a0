"""MLflow's embedded SQLite registry through the standard library's ``sqlite3`` (no MLflow import).

On the embedded default (``sqlite:///…/mlflow.db``) every MLflow call first pays ``import mlflow``
(~1.2 s) and the SQLAlchemy tracking store (~0.8 s), so ``driftline models list | show |
rollback`` took 2.2 s for a few rows. ``_SqliteBackend`` answers the same registry calls as
``MlflowClient`` with the statements MLflow's ``SqlAlchemyStore`` runs, and only on a schema it
was checked against:

* the database's Alembic revision must be in :data:`KNOWN_REVISIONS` (the heads of the MLflow
  releases ``tests/unit/test_registry_sqlite.py`` compares call by call with ``MlflowClient``);
  any other revision, MLflow workspaces (``MLFLOW_ENABLE_WORKSPACES``) or a non-local artifact
  root go through MLflow as before;
* rows are scoped to MLflow's ``default`` workspace and versions in its internal deleted stage
  are invisible, as in MLflow;
* a write (alias move, model tag) is one ``BEGIN IMMEDIATE`` transaction that first checks what
  MLflow checks (the model, the version), so it lands whole or not at all; a busy database is a
  :class:`~driftline.errors.TransientError`.

Webhooks do not fire on this path, but neither do they when ``MlflowClient`` writes a SQLite
store directly: MLflow fires them in its tracking server only.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftline.errors import DriftlineError, TransientError
from driftline.registry.backends import (
    MAX_ARTIFACT_DEPTH,
    MAX_ARTIFACTS,
    _first_line,
    _ModelState,
    _NotFoundError,
    _VersionData,
)

# Alembic heads whose registry tables this module reads and writes exactly as MLflow does.
KNOWN_REVISIONS = frozenset({"dc11669786a5"})  # MLflow 3.17
WORKSPACE = "default"  # MLflow's single-tenant workspace
DELETED_STAGE = "Deleted_Internal"  # MLflow's STAGE_DELETED_INTERNAL
TEMP_ARTIFACT_PREFIX = ".artifact.uploading."  # files MLflow's local repository hides while uploading
MAX_TAG_KEY = 250  # MLflow's MAX_MODEL_REGISTRY_TAG_KEY_LENGTH
MAX_TAG_VALUE = 100_000  # MLflow's MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH
BUSY_TIMEOUT_S = 30.0


def schema_revision(db: Path) -> str | None:
    """The Alembic revision of an MLflow database (None when it has none or cannot be read)."""
    return _read_one(db, "SELECT version_num FROM alembic_version")


def _read_one(db: Path, sql: str) -> str | None:
    """The first column of the first row of a read-only query (None when absent or unreadable)."""
    try:
        con = sqlite3.connect(f"{_file_uri(db)}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return None
    try:
        row = con.execute(sql).fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return None if row is None else str(row[0])


def usable(db: Path) -> bool:
    """Whether ``db`` can be served by :class:`_SqliteBackend` (else MLflow's client is used).

    Not when MLflow workspaces are on, nor when models live outside the ``default`` workspace
    (single-tenant MLflow refuses to start on such a database; its error is the right answer).
    """
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("1", "true", "yes"):
        return False
    if not db.is_file() or schema_revision(db) not in KNOWN_REVISIONS:
        return False
    other = _read_one(db, f"SELECT COUNT(*) FROM registered_models WHERE workspace != '{WORKSPACE}'")
    return other == "0"


def _file_uri(db: Path) -> str:
    return "file:" + urllib.parse.quote(str(db.absolute()))


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file:`` or plain-path artifact URI (None for s3://, mlflow-artifacts: …)."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def walk_local_artifacts(root: Path) -> list[tuple[str, int | None]]:
    """(path, size) of every file under ``root``, in the order MLflow's local repository lists them."""
    out: list[tuple[str, int | None]] = []

    def walk(folder: Path, rel: str, depth: int) -> None:
        entries = sorted(
            (e for e in folder.iterdir() if not e.name.startswith(TEMP_ARTIFACT_PREFIX)), key=lambda e: e.name
        )
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():
                if depth < MAX_ARTIFACT_DEPTH:
                    walk(entry, path, depth + 1)
            else:
                out.append((path, entry.stat().st_size))
            if len(out) > MAX_ARTIFACTS:
                raise DriftlineError(f"artifact folder {root} holds more than {MAX_ARTIFACTS} files")

    if root.is_dir():
        walk(root, "", 0)
    return out


class _SqliteBackend:
    """Registry calls on MLflow's SQLite database with ``sqlite3``; see the module docstring."""

    def __init__(self, db: Path, name: str, fallback: Callable[[], Any]) -> None:
        self.db = db
        self.name = name
        self._fallback = fallback  # the MlflowClient backend, for what this one does not serve

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction: a consistent read, or a write that lands whole; errors in one line."""
        try:
            con = sqlite3.connect(
                f"{_file_uri(self.db)}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as e:
            raise DriftlineError(f"MLflow database {self.db}: {_first_line(e)}") from None
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield con
            con.execute("COMMIT")
        except sqlite3.OperationalError as e:
            text = _first_line(e)
            if "locked" in text or "busy" in text:
                raise TransientError(f"MLflow database {self.db} is busy: {text}") from None
            raise DriftlineError(f"MLflow database {self.db}: {text}") from None
        except sqlite3.Error as e:
            raise DriftlineError(f"MLflow database {self.db}: {_first_line(e)}") from None
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()

    def _require_model(self, con: sqlite3.Connection) -> None:
        row = con.execute(
            "SELECT 1 FROM registered_models WHERE workspace = ? AND name = ?", (WORKSPACE, self.name)
        ).fetchone()
        if row is None:
            raise _NotFoundError(f"Registered Model with name={self.name} not found")

    def _require_version(self, con: sqlite3.Connection, version: str) -> None:
        row = con.execute(
            "SELECT 1 FROM model_versions WHERE workspace = ? AND name = ? AND version = ? AND current_stage != ?",
            (WORKSPACE, self.name, int(version), DELETED_STAGE),
        ).fetchone()
        if row is None:
            raise _NotFoundError(f"Model Version (name={self.name}, version={version}) not found")

    def _aliases(self, con: sqlite3.Connection) -> dict[str, str]:
        rows = con.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ?",
            (WORKSPACE, self.name),
        )
        return {str(alias): str(version) for alias, version in rows}

    def _version_tags(self, con: sqlite3.Connection, version: int | None = None) -> dict[int, dict[str, str]]:
        sql = 'SELECT version, "key", value FROM model_version_tags WHERE workspace = ? AND name = ?'
        args: tuple[Any, ...] = (WORKSPACE, self.name)
        if version is not None:
            sql += " AND version = ?"
            args += (version,)
        out: dict[int, dict[str, str]] = {}
        for v, key, value in con.execute(sql, args):
            out.setdefault(int(v), {})[str(key)] = "" if value is None else str(value)
        return out

    def _versions(self, con: sqlite3.Connection, version: int | None = None) -> list[_VersionData]:
        sql = (
            "SELECT version, run_id, creation_time, source, status FROM model_versions "
            "WHERE workspace = ? AND name = ? AND current_stage != ?"
        )
        args: tuple[Any, ...] = (WORKSPACE, self.name, DELETED_STAGE)
        if version is not None:
            sql += " AND version = ?"
            args += (version,)
        rows = con.execute(sql + " ORDER BY version", args).fetchall()
        tags = self._version_tags(con, version)
        aliases = self._aliases(con)
        return [
            _VersionData(
                version=str(v),
                run_id=run_id or None,
                tags=tags.get(int(v), {}),
                aliases=tuple(a for a, held in aliases.items() if held == str(v)),
                created_ms=int(created or 0),
                source=str(source or ""),
                status=str(status or ""),
            )
            for v, run_id, created, source, status in rows
        ]

    # -- the calls ModelRegistry makes --------------------------------------------------------------
    def model_state(self) -> _ModelState:
        with self._tx() as con:
            self._require_model(con)
            tags = con.execute(
                'SELECT "key", value FROM registered_model_tags WHERE workspace = ? AND name = ?',
                (WORKSPACE, self.name),
            )
            return _ModelState(aliases=self._aliases(con), tags={str(k): "" if v is None else str(v) for k, v in tags})

    def version(self, version: str) -> _VersionData:
        with self._tx() as con:
            found = self._versions(con, int(version))
        if not found:
            raise _NotFoundError(f"Model Version (name={self.name}, version={version}) not found")
        return found[0]

    def search_versions(self) -> list[_VersionData]:
        with self._tx() as con:
            return self._versions(con)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with self._tx() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_uuid = ?", (run_id,)).fetchone() is None:
                raise _NotFoundError(f"Run with id={run_id} not found")
            rows = con.execute('SELECT "key", value, is_nan FROM latest_metrics WHERE run_uuid = ?', (run_id,))
            return {str(k): float("nan") if is_nan else float(v) for k, v, is_nan in rows}

    def list_artifacts(self, run_id: str) -> list[tuple[str, int | None]]:
        with self._tx() as con:
            row = con.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None:
            raise _NotFoundError(f"Run with id={run_id} not found")
        folder = local_artifact_dir(str(row[0] or ""))
        if folder is None:  # a remote artifact store: MLflow's repositories know how to list it
            return self._fallback().list_artifacts(run_id)
        return walk_local_artifacts(folder)

    def set_model_tag(self, key: str, value: str) -> None:
        if not key or len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise DriftlineError(
                f"registered model tag {key[:40]!r}: key must be 1-{MAX_TAG_KEY} characters and the value at "
                f"most {MAX_TAG_VALUE}"
            )
        with self._tx(write=True) as con:
            self._require_model(con)
            con.execute(
                'INSERT INTO registered_model_tags (workspace, "key", value, name) VALUES (?, ?, ?, ?) '
                'ON CONFLICT (workspace, "key", name) DO UPDATE SET value = excluded.value',
                (WORKSPACE, key, value, self.name),
            )

    def set_alias(self, alias: str, version: str) -> None:
        with self._tx(write=True) as con:
            self._require_version(con, version)
            con.execute(
                "INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
                (WORKSPACE, self.name, alias, int(version)),
            )

    def delete_alias(self, alias: str) -> None:
        with self._tx(write=True) as con:
            self._require_model(con)
            con.execute(
                "DELETE FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?",
                (WORKSPACE, self.name, alias),
            )
