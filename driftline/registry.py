"""Model versions in the MLflow registry: logging candidates, aliases, alias history, rollback.

Every candidate becomes one MLflow run (params, metrics, artifacts, dataset inputs, the
scikit-learn pipeline with signature and input example) and one registered model version whose
tags explain it. Serving reads ``models:/NAME@champion``; a rollback only moves that alias.

MLflow keeps no history of alias moves (its issue #2169), so driftline keeps its own, durably,
as tags on the registered model: one tag per move, ``alias_history.<6-digit seq>``, whose value
is a JSON record. A move is written in three steps so that a crash at any point leaves a state
that :meth:`ModelRegistry.repair` can settle on the next write:

1. the record is written with ``state="intent"``;
2. the alias is moved;
3. the record is rewritten with ``state="done"``.

An intent whose alias already points at its target is completed (``done``); one whose alias did
not move is ``aborted`` (the command that wrote it failed, so it is not replayed later).

Alias writers are serialised by a file lock (next to the SQLite database for a ``sqlite:``
store, in the temp folder keyed by the tracking URI and model otherwise; registrations hold a
second one, so a rollback never waits for a model upload) and re-read the alias right before
moving it, so a move made meanwhile by anything outside driftline aborts the command instead of
being overwritten. Processes on other hosts share the lock only through a shared folder
(``lock_path``); without one, the re-read check is the only guard.

Against an ``http(s)://`` tracking server, alias moves, history and version look-ups talk to the
server's REST API directly (standard library only) so that ``driftline models rollback`` does not
pay MLflow's ~1.7 s import; everything else goes through the MLflow client.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import DriftlineError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

# -- tag conventions ------------------------------------------------------------------------
TAG_IDEMPOTENCY = "idempotency_key"
"""Version tag holding the key a version was registered under (see ``register_candidate``)."""
TAG_TRIGGER = "trigger"
"""Version tag: why it was trained (schedule / drift / performance / manual / bootstrap)."""
TAG_PRIMARY_METRIC = "primary_metric"
"""Version tag naming the primary metric; its value is read from run metric ``test.<name>``."""
TAG_GATES_PASSED = "gate.passed"
"""Version tag summarising the promotion gates (``true``/``false``), as ``GateReport.to_tags`` writes."""
CHECK_TAG_PREFIXES = ("gate.", "gates.", "validation.", "skew.")
"""Tags under these prefixes are checks: per gate (``gate.beat_champion = "fail: ..."``) or summaries
(``gate.passed = false``, ``validation.status = failed``). ``promote`` refuses a version with any check
whose value is, or starts with, one of :data:`FAILED_VALUES` followed by ``:``."""
FAILED_VALUES = frozenset({"failed", "fail", "false", "error"})

RUN_TAG_KEY = "driftline.idempotency_key"
"""Run tag written when the run starts, so a crashed registration can be found again."""
RUN_TAG_MODEL_URI = "driftline.model_uri"
"""Run tag written once the model is logged: a FINISHED run with it is ready to register."""
HISTORY_PREFIX = "alias_history."
DEFAULT_ALIASES = ("champion", "challenger")
MODEL_ARTIFACT_NAME = "model"

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:/+=@-]{1,200}$")
_VERSION_RE = re.compile(r"^[1-9][0-9]*$")
_UNSET: Any = object()


# -- value objects --------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisteredVersion:
    """What ``register_candidate`` returns; ``created`` is False when the key was already registered."""

    version: str
    run_id: str
    created: bool


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as driftline shows it: aliases, tags and the run's metrics."""

    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str | None
    created_at: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""
    status: str = ""

    @property
    def trigger(self) -> str | None:
        return self.tags.get(TAG_TRIGGER)

    @property
    def refusal_reasons(self) -> list[str]:
        """The failed gate/validation tags that make ``promote`` refuse this version."""
        return refusal_reasons(self.tags)

    @property
    def gate_status(self) -> str:
        """``passed``/``failed`` from ``gate.passed``; else ``failed`` if any check failed, else ``-``."""
        summary = self.tags.get(TAG_GATES_PASSED, "").strip().lower()
        if summary in ("true", "false"):
            return "passed" if summary == "true" else "failed"
        return "failed" if self.refusal_reasons else "-"

    def metric(self, name: str) -> float | None:
        """The test-set value of metric ``name``: run metric ``test.<name>`` (or ``test_<name>``)."""
        for key in (f"test.{name}", f"test_{name}"):
            if key in self.metrics:
                return self.metrics[key]
            if key in self.tags:
                try:
                    return float(self.tags[key])
                except ValueError:
                    return None
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["created_at"] = _iso(self.created_at)
        d["gate_status"] = self.gate_status
        return d


@dataclass(frozen=True)
class AliasMove:
    """One alias move as recorded in driftline's alias history.

    ``state`` is ``done`` for a completed move, ``intent`` while a move is in flight (or after a
    crash, until repaired) and ``aborted`` for a move that never happened. ``changed`` is False
    when the alias already pointed at the target (nothing was moved or recorded).
    """

    seq: int
    when: datetime
    actor: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    kind: str = "set"
    state: str = "done"
    forced: bool = False
    note: str = ""
    changed: bool = True

    def record(self) -> dict[str, Any]:
        """The JSON-serialisable record stored in the registered-model tag."""
        return {
            "seq": self.seq,
            "when": _iso(self.when),
            "actor": self.actor,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "kind": self.kind,
            "state": self.state,
            "forced": self.forced,
            "note": self.note,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.record()
        d["from_version"] = d.pop("from")
        d["to_version"] = d.pop("to")
        d["changed"] = self.changed
        return d

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AliasMove:
        return cls(
            seq=int(record["seq"]),
            when=datetime.fromisoformat(str(record["when"])),
            actor=str(record.get("actor", "")),
            alias=str(record["alias"]),
            from_version=None if record.get("from") is None else str(record["from"]),
            to_version=str(record["to"]),
            reason=str(record.get("reason", "")),
            kind=str(record.get("kind", "set")),
            state=str(record.get("state", "done")),
            forced=bool(record.get("forced", False)),
            note=str(record.get("note", "")),
        )


@dataclass(frozen=True)
class DatasetInput:
    """A frame to log as an MLflow dataset input of the run (``context``: training / testing)."""

    frame: pd.DataFrame
    name: str
    context: str
    targets: str | None = None
    source: str | None = None


def refusal_reasons(tags: Mapping[str, str]) -> list[str]:
    """``key=value`` (value cut at 80 characters) for every check tag whose value says it failed."""
    out = []
    for key in sorted(tags):
        value = str(tags[key]).strip()
        verdict = value.split(":", 1)[0].strip().lower()
        if key.startswith(CHECK_TAG_PREFIXES) and verdict in FAILED_VALUES:
            out.append(f"{key}={value if len(value) <= 80 else value[:77] + '...'}")
    return out


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _now() -> datetime:
    """Now in UTC, to the millisecond (what the stored record keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _history_key(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:06d}"


def _first_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else str(text)
    return line if len(line) <= 300 else line[:297] + "..."


# -- backends: the few registry calls alias operations need ------------------------------------
@dataclass
class _ModelState:
    aliases: dict[str, str]
    tags: dict[str, str]


@dataclass
class _VersionData:
    version: str
    run_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created_ms: int
    source: str
    status: str


class _NotFoundError(Exception):
    """The registered model, version or alias does not exist (translated by the caller)."""


class _MlflowBackend:
    """Registry calls through ``MlflowClient`` (any tracking URI MLflow supports)."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri
        self.name = name
        self._client_obj: Any = None

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            from mlflow import MlflowClient

            with self.translate():
                self._client_obj = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client_obj

    @contextmanager
    def translate(self) -> Iterator[None]:
        """Turn MLflow and transport errors into _NotFoundError or a one-line DriftlineError."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise _NotFoundError(_first_line(e.message)) from None
            text = _first_line(e.message)
            if "failed with exception" in text or "Max retries exceeded" in text or "Connection" in text:
                raise DriftlineError(f"MLflow at {self.uri} is unreachable: {text}") from None
            raise DriftlineError(f"MLflow ({self.uri}): {text}") from None
        except OSError as e:
            import requests

            if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
                raise DriftlineError(f"MLflow at {self.uri} is unreachable: {_first_line(e)}") from None
            raise DriftlineError(f"MLflow ({self.uri}): {_first_line(e)}") from None

    def model_state(self) -> _ModelState:
        with self.translate():
            rm = self.client.get_registered_model(self.name)
        return _ModelState(aliases={a: str(v) for a, v in (rm.aliases or {}).items()}, tags=dict(rm.tags or {}))

    def version(self, version: str) -> _VersionData:
        with self.translate():
            mv = self.client.get_model_version(self.name, version)
        return _VersionData(
            version=str(mv.version),
            run_id=mv.run_id or None,
            tags=dict(mv.tags or {}),
            aliases=tuple(mv.aliases or ()),
            created_ms=int(mv.creation_timestamp or 0),
            source=str(mv.source or ""),
            status=str(mv.status or ""),
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with self.translate():
            return dict(self.client.get_run(run_id).data.metrics)

    def set_model_tag(self, key: str, value: str) -> None:
        with self.translate():
            self.client.set_registered_model_tag(self.name, key, value)

    def set_alias(self, alias: str, version: str) -> None:
        with self.translate():
            self.client.set_registered_model_alias(self.name, alias, version)


class _RestBackend:
    """Registry calls over MLflow's REST API with the standard library (no MLflow import).

    Honours MLflow's client settings: ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``,
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (default 120 s) and ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    (default 2 here, with 0.2 s doubling back-off, for refused connections and 429/5xx answers).
    """

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri.rstrip("/")
        self.name = name

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "driftline"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.uri.startswith("https:"):
            return None
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            return ssl._create_unverified_context()  # the user asked for it
        return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)

    def call(self, method: str, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET":
            url += "?" + urllib.parse.urlencode(payload)
        else:
            data = json.dumps(payload).encode()
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 2)
        context = self._ssl_context()
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            try:
                with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                    body = response.read()
                return json.loads(body) if body else {}
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")
                try:
                    err = json.loads(body)
                except ValueError:
                    err = {"message": body}
                if err.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
                    raise _NotFoundError(_first_line(err.get("message") or f"{path}: not found")) from None
                if (e.code == 429 or e.code >= 500) and attempt < retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise DriftlineError(
                    f"MLflow at {self.uri} answered {e.code} to {path}: {_first_line(err.get('message') or body)}"
                ) from None
            except (urllib.error.URLError, OSError) as e:
                if attempt < retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                reason = getattr(e, "reason", e)
                raise DriftlineError(f"MLflow at {self.uri} is unreachable: {_first_line(reason)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def model_state(self) -> _ModelState:
        rm = self.call("GET", "registered-models/get", {"name": self.name}).get("registered_model", {})
        return _ModelState(
            aliases={a["alias"]: str(a["version"]) for a in rm.get("aliases", [])},
            tags={t["key"]: t.get("value", "") for t in rm.get("tags", [])},
        )

    def version(self, version: str) -> _VersionData:
        mv = self.call("GET", "model-versions/get", {"name": self.name, "version": version}).get("model_version", {})
        return _VersionData(
            version=str(mv.get("version", version)),
            run_id=mv.get("run_id") or None,
            tags={t["key"]: t.get("value", "") for t in mv.get("tags", [])},
            aliases=tuple(mv.get("aliases", [])),
            created_ms=int(mv.get("creation_timestamp") or 0),
            source=str(mv.get("source", "")),
            status=str(mv.get("status", "")),
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        run = self.call("GET", "runs/get", {"run_id": run_id}).get("run", {})
        return {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])}

    def set_model_tag(self, key: str, value: str) -> None:
        self.call("POST", "registered-models/set-tag", {"name": self.name, "key": key, "value": value})

    def set_alias(self, alias: str, version: str) -> None:
        self.call("POST", "registered-models/alias", {"name": self.name, "alias": alias, "version": version})


# -- the lock ---------------------------------------------------------------------------------
@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; released when the process dies, so no stale locks."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DriftlineError(
                        f"registry is busy: another driftline command holds {path} (waited {timeout:g} s); retry"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for in-memory or other schemes)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


# -- the registry -----------------------------------------------------------------------------
class ModelRegistry:
    """Register candidates, move aliases with a durable history, roll back, load models.

    Nothing happens in ``__init__``: MLflow is imported and contacted on first use. The
    experiment ``driftline/<model_name>`` holds the runs; with a database or file tracking store
    its artifacts go under ``artifact_root/<model_name>`` (an ``http(s)`` server picks its own).
    ``aliases`` are the alias names commands accept; anything else is refused as unknown.
    ``checkpoint_hook`` (tests only) is called with the name of each step of a write, so a test
    can stop a write between steps the way a crash would.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        artifact_root: Path | None = None,
        *,
        aliases: Sequence[str] = DEFAULT_ALIASES,
        lock_path: Path | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.tracking_uri = str(tracking_uri)
        self.model_name = model_name
        self.artifact_root = None if artifact_root is None else Path(artifact_root)
        self.aliases = tuple(aliases)
        self.lock_timeout = lock_timeout
        self._lock_path = None if lock_path is None else Path(lock_path)
        self.checkpoint_hook: Callable[[str], None] | None = None
        self._backend_obj: _MlflowBackend | _RestBackend | None = None
        self._mlflow_backend_obj: _MlflowBackend | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ModelRegistry:
        """The registry named by driftline settings (tracking URI, model name, artifact root)."""
        return cls(settings.mlflow_tracking_uri, settings.model_name, settings.artifact_root)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.tracking_uri!r}, {self.model_name!r})"

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def is_http(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def lock_path(self) -> Path:
        """Where writers serialise: next to a SQLite database, else in the temp folder per URI."""
        if self._lock_path is not None:
            return self._lock_path
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.model_name)
        db = _sqlite_path(self.tracking_uri)
        if db is not None:
            return db.with_name(f"{db.name}.driftline-{safe}.lock")
        digest = hashlib.sha1(self.tracking_uri.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / "driftline-locks" / f"{digest}-{safe}.lock"

    @contextmanager
    def _lock(self, purpose: str = "alias") -> Iterator[None]:
        """Alias moves and registrations hold different locks: a rollback never waits for a model upload."""
        path = self.lock_path if purpose == "alias" else self.lock_path.with_suffix(f".{purpose}.lock")
        with _file_lock(path, self.lock_timeout):
            yield

    def _checkpoint(self, step: str) -> None:
        if self.checkpoint_hook is not None:
            self.checkpoint_hook(step)

    def _require_store(self, *, create: bool = False) -> None:
        """Refuse reads of a SQLite store that does not exist (MLflow would create an empty one)."""
        db = _sqlite_path(self.tracking_uri)
        if db is None:
            return
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        elif not db.exists():
            raise DriftlineError(
                f"no MLflow database at {db}: nothing is registered yet (tracking URI {self.tracking_uri})"
            )

    @property
    def _mlflow_backend(self) -> _MlflowBackend:
        if self._mlflow_backend_obj is None:
            self._mlflow_backend_obj = _MlflowBackend(self.tracking_uri, self.model_name)
        return self._mlflow_backend_obj

    @property
    def _backend(self) -> _MlflowBackend | _RestBackend:
        if self._backend_obj is None:
            self._backend_obj = (
                _RestBackend(self.tracking_uri, self.model_name) if self.is_http else self._mlflow_backend
            )
        return self._backend_obj

    @contextmanager
    def _using_store(self) -> Iterator[Any]:
        """Point MLflow's process-wide (fluent) API at this store for the block, then restore it.

        ``mlflow.set_tracking_uri``/``set_registry_uri`` also export ``MLFLOW_TRACKING_URI`` and
        ``MLFLOW_REGISTRY_URI`` to the environment, which every later subprocess would inherit;
        restoring both keeps this registry's store from leaking into unrelated code.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
        saved_registry = getattr(registry_utils, "_registry_uri", None)
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield mlflow
        finally:
            if saved_tracking is not None:
                mlflow.set_tracking_uri(saved_tracking)
            else:
                tracking_utils._tracking_uri = None
            if saved_registry is not None:
                mlflow.set_registry_uri(saved_registry)
            else:
                registry_utils._registry_uri = None
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _state_or_none(self) -> _ModelState | None:
        """The registered model's aliases and tags; None when the store or the model is absent."""
        db = _sqlite_path(self.tracking_uri)
        if db is not None and not db.exists():
            return None
        try:
            return self._backend.model_state()
        except _NotFoundError:
            return None

    def _state(self) -> _ModelState:
        self._require_store()
        state = self._state_or_none()
        if state is None:
            raise DriftlineError(
                f"no registered model '{self.model_name}' at {self.tracking_uri}: register a version first"
            )
        return state

    def _version_data(self, version: str | int) -> _VersionData:
        v = self._check_version(version)
        self._require_store()
        try:
            return self._backend.version(v)
        except _NotFoundError:
            self._state()  # a missing model says so rather than "no version"
            raise DriftlineError(f"model '{self.model_name}' has no version {v}") from None

    @staticmethod
    def _check_version(version: str | int) -> str:
        v = str(version).strip()
        if not _VERSION_RE.match(v):
            raise DriftlineError(f"version must be a positive whole number, got {version!r}")
        return v

    def _check_alias(self, alias: str) -> str:
        if alias not in self.aliases:
            raise DriftlineError(f"unknown alias '{alias}' (known: {', '.join(self.aliases)})")
        return alias

    @staticmethod
    def _check_text(what: str, value: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise DriftlineError(f"{what} must not be empty")
        return value.strip()

    def _info(self, data: _VersionData, aliases: Mapping[str, str] | None = None) -> VersionInfo:
        if aliases is not None:
            names = tuple(sorted(a for a, v in aliases.items() if v == data.version))
        else:
            names = tuple(sorted(data.aliases))
        metrics: dict[str, float] = {}
        if data.run_id:
            try:
                metrics = self._backend.run_metrics(data.run_id)
            except _NotFoundError:
                metrics = {}
        return VersionInfo(
            version=data.version,
            aliases=names,
            tags=data.tags,
            run_id=data.run_id,
            created_at=datetime.fromtimestamp(data.created_ms / 1000, UTC),
            metrics=metrics,
            source=data.source,
            status=data.status,
        )

    # -- reading ------------------------------------------------------------------------------
    def get(self, version: str | int) -> VersionInfo:
        """One version with its aliases, tags and the metrics of the run that produced it."""
        data = self._version_data(version)
        return self._info(data, self._state().aliases)

    def alias_version(self, alias: str = "champion") -> str | None:
        """The version an alias points at, or None when the alias (or the model) is not set."""
        self._check_alias(alias)
        state = self._state_or_none()
        return None if state is None else state.aliases.get(alias)

    def champion(self) -> VersionInfo | None:
        """The version serving now (alias ``champion``), or None when there is none yet."""
        version = self.alias_version("champion")
        return None if version is None else self.get(version)

    def list_versions(self) -> list[VersionInfo]:
        """Every version of the model, oldest first (empty when nothing is registered)."""
        state = self._state_or_none()
        if state is None:
            return []
        client = self._mlflow_backend.client
        out: list[_VersionData] = []
        token = None
        with self._mlflow_backend.translate():
            while True:
                page = client.search_model_versions(f"name = '{_quote(self.model_name)}'", page_token=token)
                for mv in page:
                    out.append(
                        _VersionData(
                            version=str(mv.version),
                            run_id=mv.run_id or None,
                            tags=dict(mv.tags or {}),
                            aliases=(),
                            created_ms=int(mv.creation_timestamp or 0),
                            source=str(mv.source or ""),
                            status=str(mv.status or ""),
                        )
                    )
                token = page.token
                if not token:
                    break
        out.sort(key=lambda d: int(d.version))
        return [self._info(d, state.aliases) for d in out]

    def history(self, alias: str | None = None) -> list[AliasMove]:
        """Recorded alias moves in the order they were made (every state; see ``AliasMove.state``)."""
        if alias is not None:
            self._check_alias(alias)
        state = self._state_or_none()
        if state is None:
            return []
        moves = _parse_history(state.tags)
        return [m for m in moves if alias is None or m.alias == alias]

    # -- artifacts ------------------------------------------------------------------------------
    def list_artifacts(self, version: str | int) -> list[tuple[str, int | None]]:
        """Every file logged with the version's run, as (path, size in bytes)."""
        data = self._version_data(version)
        if not data.run_id:
            return []
        client = self._mlflow_backend.client
        out: list[tuple[str, int | None]] = []

        def walk(path: str | None) -> None:
            for info in client.list_artifacts(data.run_id, path):
                if info.is_dir:
                    walk(info.path)
                else:
                    out.append((info.path, info.file_size))

        with self._mlflow_backend.translate():
            walk(None)
        return out

    def download_artifact(self, version: str | int, name: str, dst: Path | None = None) -> Path:
        """Fetch artifact ``name`` of a version's run (e.g. the reference profile) to a local path."""
        data = self._version_data(version)
        available = [p for p, _ in self.list_artifacts(data.version)]
        prefix = name.rstrip("/") + "/"
        if name not in available and not any(p.startswith(prefix) for p in available):
            shown = ", ".join(available) or "none"
            raise DriftlineError(f"version {data.version} has no artifact '{name}' (has: {shown})")
        import mlflow.artifacts

        target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="driftline-artifact-"))
        target.mkdir(parents=True, exist_ok=True)
        with self._mlflow_backend.translate(), _env_default(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
            local = mlflow.artifacts.download_artifacts(
                run_id=data.run_id, artifact_path=name, dst_path=str(target), tracking_uri=self.tracking_uri
            )
        return Path(local)

    def read_artifact_json(self, version: str | int, name: str) -> Any:
        """Download a JSON artifact of a version and parse it."""
        path = self.download_artifact(version, name)
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise DriftlineError(f"artifact '{name}' of version {version} is not valid JSON: {e}") from None

    def load(self, alias: str = "champion", *, version: str | int | None = None) -> Any:
        """Load the scikit-learn pipeline behind ``models:/NAME@alias`` (or a given version).

        MLflow refuses to deserialise models unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is
        true; driftline loads only what it registered itself, so it allows it for this call unless
        the variable is explicitly set to something else.
        """
        if version is not None:
            uri = f"models:/{self.model_name}/{self._check_version(version)}"
            self._version_data(version)
        else:
            self._check_alias(alias)
            if self.alias_version(alias) is None:
                raise DriftlineError(f"model '{self.model_name}' has no alias '{alias}' yet")
            uri = f"models:/{self.model_name}@{alias}"
        key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
        previous = os.environ.get(key)
        if previous is not None and previous.lower() != "true":
            raise DriftlineError(f"{key}={previous} forbids loading models; unset it or set it to true")
        os.environ[key] = "true"
        try:
            with (
                self._using_store() as mlflow,
                self._mlflow_backend.translate(),
                _env_default(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),
            ):
                import mlflow.sklearn

                return mlflow.sklearn.load_model(uri)
        finally:
            if previous is None:
                os.environ.pop(key, None)

    # -- registering -----------------------------------------------------------------------------
    def register_candidate(
        self,
        *,
        pipeline: Any,
        input_example: pd.DataFrame,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, Any],
        artifacts: Mapping[str, str | dict | list | Path],
        datasets: Sequence[DatasetInput | tuple] = (),
        idempotency_key: str,
        run_name: str | None = None,
        target: str | None = None,
    ) -> RegisteredVersion:
        """Log a candidate as one MLflow run and register it as a version, at most once per key.

        Before logging anything, a version tagged with ``idempotency_key`` is looked up and
        returned with ``created=False``. A FINISHED run of an earlier attempt that crashed before
        registering (found by its run tag) is registered instead of logging a new run; runs left
        RUNNING by a crashed process are marked KILLED. ``artifacts`` maps a file name in the run
        to its content: a dict or list becomes JSON, a str is written as text, a Path is copied.
        ``datasets`` are logged as dataset inputs: ``DatasetInput`` or tuples ``(frame, name,
        context[, targets])``; ``target`` names the label column for tuples that do not.
        Version tags are stringified (dicts and lists as JSON) and get ``idempotency_key`` added.
        """
        key = str(idempotency_key)
        if not _KEY_RE.match(key):
            raise DriftlineError(f"idempotency key {key!r} must be 1-200 characters of letters, digits and _.:/+=@-")
        version_tags = {str(k): _tag_value(v) for k, v in tags.items()}
        version_tags[TAG_IDEMPOTENCY] = key
        dataset_inputs = [_as_dataset(d, target) for d in datasets]
        self._require_store(create=True)
        backend = self._mlflow_backend
        with self._lock("register"), self._using_store() as mlflow:
            found = self._version_by_key(key)
            if found is not None:
                return RegisteredVersion(version=found[0], run_id=found[1], created=False)
            run_id, model_uri = self._finished_run(key)
            if run_id is None:
                self._kill_stale_runs(key)
                run_id, model_uri = self._log_run(
                    mlflow,
                    pipeline=pipeline,
                    input_example=input_example,
                    params=params,
                    metrics=metrics,
                    artifacts=artifacts,
                    datasets=dataset_inputs,
                    key=key,
                    run_name=run_name,
                )
            self._checkpoint("before_register")
            # register_model prints "Successfully registered ..." to stderr; the caller reports instead.
            with backend.translate(), contextlib.redirect_stderr(io.StringIO()):
                mv = mlflow.register_model(model_uri, self.model_name, tags=version_tags)
            self._checkpoint("registered")
        return RegisteredVersion(version=str(mv.version), run_id=run_id, created=True)

    def find_by_key(self, idempotency_key: str) -> RegisteredVersion | None:
        """The version already registered under ``idempotency_key`` (created=False), if any."""
        if self._state_or_none() is None:
            return None
        found = self._version_by_key(str(idempotency_key))
        return None if found is None else RegisteredVersion(found[0], found[1], created=False)

    def _version_by_key(self, key: str) -> tuple[str, str] | None:
        backend = self._mlflow_backend
        with backend.translate():
            found = backend.client.search_model_versions(
                f"name = '{_quote(self.model_name)}' and tags.{TAG_IDEMPOTENCY} = '{_quote(key)}'"
            )
        if not found:
            return None
        first = min(found, key=lambda mv: int(mv.version))
        return str(first.version), str(first.run_id or "")

    def _experiment_id(self) -> str:
        name = f"driftline/{self.model_name}"
        client = self._mlflow_backend.client
        with self._mlflow_backend.translate():
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            location = None
            if self.artifact_root is not None and not self.is_http:
                location = (self.artifact_root.expanduser().resolve() / self.model_name).as_uri()
            return client.create_experiment(name, artifact_location=location)

    def _runs_with_key(self, key: str, status: str) -> list[Any]:
        client = self._mlflow_backend.client
        with self._mlflow_backend.translate():
            exp = client.get_experiment_by_name(f"driftline/{self.model_name}")
            if exp is None:
                return []
            return list(
                client.search_runs(
                    [exp.experiment_id],
                    f"tags.`{RUN_TAG_KEY}` = '{_quote(key)}' and attributes.status = '{status}'",
                    order_by=["attributes.start_time DESC"],
                )
            )

    def _finished_run(self, key: str) -> tuple[str | None, str | None]:
        for run in self._runs_with_key(key, "FINISHED"):
            uri = run.data.tags.get(RUN_TAG_MODEL_URI)
            if uri:
                return run.info.run_id, uri
        return None, None

    def _kill_stale_runs(self, key: str) -> None:
        client = self._mlflow_backend.client
        for run in self._runs_with_key(key, "RUNNING"):
            with self._mlflow_backend.translate():
                client.set_terminated(run.info.run_id, status="KILLED")

    def _log_run(
        self,
        mlflow: Any,
        *,
        pipeline: Any,
        input_example: pd.DataFrame,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Mapping[str, str | dict | list | Path],
        datasets: list[DatasetInput],
        key: str,
        run_name: str | None,
    ) -> tuple[str, str]:
        import mlflow.data
        import mlflow.sklearn
        from mlflow.models import infer_signature

        experiment_id = self._experiment_id()
        serialization, trusted = _serialization(pipeline)
        requirements = _pip_requirements(serialization)
        with self._mlflow_backend.translate(), warnings.catch_warnings():
            # MLflow warns that integer columns cannot hold missing values; the contract decides that.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(input_example, pipeline.predict(input_example))
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=run_name,
                tags={RUN_TAG_KEY: key, "driftline.model_name": self.model_name},
                nested=mlflow.active_run() is not None,
            ) as run:
                self._checkpoint("run_started")
                if params:
                    mlflow.log_params({str(k): _tag_value(v) for k, v in params.items()})
                if metrics:
                    mlflow.log_metrics({str(k): float(v) for k, v in metrics.items()})
                for d in datasets:
                    ds = mlflow.data.from_pandas(d.frame, name=d.name, targets=d.targets, source=d.source)
                    mlflow.log_input(ds, context=d.context)
                if artifacts:
                    with tempfile.TemporaryDirectory(prefix="driftline-artifacts-") as tmp:
                        _write_artifacts(Path(tmp), artifacts)
                        mlflow.log_artifacts(tmp)
                info = mlflow.sklearn.log_model(
                    pipeline,
                    name=MODEL_ARTIFACT_NAME,
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=requirements,
                    serialization_format=serialization,
                    skops_trusted_types=trusted,
                )
                self._checkpoint("model_logged")
                mlflow.set_tag(RUN_TAG_MODEL_URI, info.model_uri)
        return run.info.run_id, info.model_uri

    # -- alias moves --------------------------------------------------------------------------
    def repair(self) -> list[AliasMove]:
        """Settle moves left in ``intent`` by a crash; return the records it rewrote."""
        with self._lock():
            return self._repair_locked(self._state())[1]

    def _repair_locked(self, state: _ModelState) -> tuple[_ModelState, list[AliasMove]]:
        fixed = []
        for move in _parse_history(state.tags):
            if move.state != "intent":
                continue
            actual = state.aliases.get(move.alias)
            if actual == move.to_version:
                new = _replace(move, state="done", note="completed by repair: the alias had moved")
            else:
                new = _replace(
                    move, state="aborted", note=f"aborted by repair: the alias stayed at {actual or 'unset'}"
                )
            self._backend.set_model_tag(_history_key(move.seq), json.dumps(new.record()))
            state.tags[_history_key(move.seq)] = json.dumps(new.record())
            fixed.append(new)
        return state, fixed

    def set_alias(
        self,
        alias: str,
        version: str | int,
        *,
        reason: str,
        actor: str,
        expect_from: str | None = _UNSET,
        kind: str = "set",
        forced: bool = False,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` and record the move (no gate checks; see ``promote``).

        ``expect_from`` makes the move conditional: it is refused when the alias does not point
        there any more (None = the alias must be unset), so a decision taken on a stale view
        (e.g. a flow that compared against the old champion) is not applied.
        """
        self._check_alias(alias)
        data = self._version_data(version)
        return self._move(
            alias,
            lambda _s: data.version,
            kind=kind,
            reason=reason,
            actor=actor,
            expect_from=expect_from,
            forced=forced,
        )

    def promote(
        self,
        version: str | int,
        alias: str = "champion",
        *,
        reason: str,
        actor: str,
        force: bool = False,
        expect_from: str | None = _UNSET,
    ) -> AliasMove:
        """Move ``alias`` to ``version`` unless its gate, validation or skew tags say it failed.

        With ``force`` a failed version is promoted anyway and the record says so.
        """
        self._check_alias(alias)
        self._check_text("reason", reason)
        data = self._version_data(version)
        reasons = refusal_reasons(data.tags)
        if reasons and not force:
            raise DriftlineError(
                f"version {data.version} failed its checks ({', '.join(reasons)}); "
                f"not promoted to {alias} (use --force to promote it anyway)"
            )
        return self._move(
            alias,
            lambda _s: data.version,
            kind="promote",
            reason=reason,
            actor=actor,
            expect_from=expect_from,
            forced=bool(reasons),
            note=f"forced past: {', '.join(reasons)}" if reasons else "",
        )

    def rollback(
        self,
        *,
        to_version: str | int | None = None,
        previous: bool = False,
        reason: str,
        actor: str,
        alias: str = "champion",
    ) -> AliasMove:
        """Move ``champion`` back: to ``to_version``, or to the previous champion (``previous``).

        Only the alias moves: no retraining, no redeploy. The previous champion comes from the
        recorded history read as an undo stack (see :func:`previous_holder`): after promotions
        1 -> 2 -> 3, ``--previous`` goes to 2, then to 1, never back to 3.
        """
        self._check_alias(alias)
        if (to_version is None) == (not previous):
            raise DriftlineError("rollback needs exactly one target: a version (--to N) or --previous")
        if to_version is not None:
            data = self._version_data(to_version)
            return self._move(alias, lambda _s: data.version, kind="rollback", reason=reason, actor=actor)

        def previous_of(state: _ModelState) -> str:
            current = state.aliases.get(alias)
            if current is None:
                raise DriftlineError(f"model '{self.model_name}' has no {alias} to roll back from")
            target = previous_holder(_parse_history(state.tags), alias, current)
            if target is None:
                raise DriftlineError(
                    f"no previous {alias} recorded for model '{self.model_name}' "
                    f"(current {alias}: version {current}); use --to N"
                )
            return target

        return self._move(alias, previous_of, kind="rollback", reason=reason, actor=actor)

    def _move(
        self,
        alias: str,
        target: Callable[[_ModelState], str],
        *,
        kind: str,
        reason: str,
        actor: str,
        expect_from: str | None = _UNSET,
        forced: bool = False,
        note: str = "",
    ) -> AliasMove:
        reason = self._check_text("reason", reason)
        actor = self._check_text("actor", actor)
        with self._lock():
            state, _ = self._repair_locked(self._state())
            current = state.aliases.get(alias)
            if expect_from is not _UNSET and current != (None if expect_from is None else str(expect_from)):
                raise DriftlineError(
                    f"{alias} is at version {current or 'unset'}, expected {expect_from or 'unset'}: "
                    "it moved since this decision was taken; nothing changed"
                )
            to_version = target(state)
            seqs = [m.seq for m in _parse_history(state.tags)]
            seqs += [int(k[len(HISTORY_PREFIX) :]) for k in state.tags if _is_history_key(k)]
            move = AliasMove(
                seq=max(seqs, default=0) + 1,
                when=_now(),
                actor=actor,
                alias=alias,
                from_version=current,
                to_version=to_version,
                reason=reason,
                kind=kind,
                state="intent",
                forced=forced,
                note=note,
            )
            if current == to_version:
                return _replace(move, seq=0, state="done", changed=False, note=f"{alias} already at {to_version}")
            key = _history_key(move.seq)
            self._backend.set_model_tag(key, json.dumps(move.record()))
            self._checkpoint("intent_written")
            now = self._backend.model_state().aliases.get(alias)
            if now != current:
                aborted = _replace(move, state="aborted", note=f"{alias} moved to {now or 'unset'} outside driftline")
                self._backend.set_model_tag(key, json.dumps(aborted.record()))
                raise DriftlineError(
                    f"{alias} moved from version {current or 'unset'} to {now or 'unset'} outside driftline "
                    "while this command ran; nothing changed"
                )
            self._backend.set_alias(alias, to_version)
            self._checkpoint("alias_moved")
            done = _replace(move, state="done")
            self._backend.set_model_tag(key, json.dumps(done.record()))
            self._checkpoint("recorded")
        return done


# -- helpers ----------------------------------------------------------------------------------
def _replace(move: AliasMove, **changes: Any) -> AliasMove:
    from dataclasses import replace

    return replace(move, **changes)


def _is_history_key(key: str) -> bool:
    return key.startswith(HISTORY_PREFIX) and key[len(HISTORY_PREFIX) :].isdigit()


def _parse_history(tags: Mapping[str, str]) -> list[AliasMove]:
    """Alias moves from registered-model tags, ordered by sequence (unreadable records skipped)."""
    out = []
    for key, value in tags.items():
        if not _is_history_key(key):
            continue
        try:
            out.append(AliasMove.from_record(json.loads(value)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out, key=lambda m: m.seq)


def previous_holder(moves: Sequence[AliasMove], alias: str, current: str) -> str | None:
    """The version ``alias`` should roll back to from ``current``, per the recorded history.

    Completed moves of ``alias`` are replayed as an undo stack: a move to the version just below
    the top (a rollback to the previous holder) pops; any other move pushes its target. The
    answer is the entry below ``current`` on top, so repeated ``--previous`` walks further back
    instead of flipping between two versions. A move whose ``from`` is not the top (the alias was
    moved outside driftline in between) first pushes that holder; when ``current`` itself is not
    on top, the last recorded holder is the answer.
    """
    stack: list[str] = []
    for m in moves:
        if m.alias != alias or m.state != "done":
            continue
        if m.from_version is not None and (not stack or stack[-1] != m.from_version):
            stack.append(m.from_version)  # a holder set outside driftline (or before its history began)
        if m.kind == "rollback" and len(stack) >= 2 and stack[-2] == m.to_version:
            stack.pop()
        else:
            stack.append(m.to_version)
    if stack and stack[-1] != current:
        return stack[-1]
    return stack[-2] if len(stack) >= 2 else None


@contextmanager
def _env_default(**values: str) -> Iterator[None]:
    """Set environment variables that are unset, for the duration of the block only."""
    added = [k for k in values if k not in os.environ]
    for k in added:
        os.environ[k] = values[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _tag_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _as_dataset(item: DatasetInput | tuple, target: str | None) -> DatasetInput:
    if isinstance(item, DatasetInput):
        return item
    if not isinstance(item, tuple) or len(item) not in (3, 4):
        raise DriftlineError("each dataset must be DatasetInput or a tuple (frame, name, context[, targets])")
    frame, name, context = item[:3]
    targets = item[3] if len(item) == 4 else (target if target is not None and target in frame.columns else None)
    return DatasetInput(frame=frame, name=str(name), context=str(context), targets=targets)


def _write_artifacts(root: Path, artifacts: Mapping[str, str | dict | list | Path]) -> None:
    for name, content in artifacts.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DriftlineError(f"artifact name {name!r} must be a relative path inside the run")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if not content.exists():
                raise DriftlineError(f"artifact {name!r}: file {content} not found")
            if content.is_dir():
                shutil.copytree(content, dest)
            else:
                shutil.copyfile(content, dest)
        elif isinstance(content, (dict, list)):
            dest.write_text(json.dumps(content, indent=2, default=str, sort_keys=True))
        elif isinstance(content, str):
            dest.write_text(content)
        else:
            raise DriftlineError(f"artifact {name!r}: expected str, dict, list or Path, got {type(content).__name__}")


def _serialization(pipeline: Any) -> tuple[str, list[str] | None]:
    """skops (safe format) trusting exactly the types of this pipeline; cloudpickle when skops can't."""
    try:
        import skops.io

        data = skops.io.dumps(pipeline)
        return "skops", skops.io.get_untrusted_types(data=data) or None
    except Exception:  # any skops limitation: fall back to cloudpickle
        return "cloudpickle", None


def _pip_requirements(serialization: str) -> list[str]:
    """Pinned requirements of the logged model (MLflow would infer them in a ~3 s subprocess).

    driftline itself is not listed (it is not a published package): a pipeline holding driftline
    transformers needs driftline installed wherever the model is loaded.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    names = ["scikit-learn", "pandas", "numpy", "scipy", serialization]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={dist_version(name)}")
        except PackageNotFoundError:
            continue
    return out
