"""Model versions in the MLflow registry, with a switch that stays safe: the ``champion`` alias.

Every candidate becomes one MLflow run and one registered model version whose tags explain it;
serving reads ``models:/NAME@champion`` and a rollback only moves that alias. What driftline must
trust lives in its own store (:mod:`driftline.registry.history`), not in MLflow's editable tags:

* **Provenance.** A version is driftline's when the store holds its registration record: the
  run, the content hash of the model files, the serialisation and skops trusted types, and the
  verdict (gates and validation). ``load`` refuses anything else, and anything whose files no
  longer hash the same.
* **One rule for every move.** ``promote``, ``rollback`` and the flow's promotion all check it:
  registered by driftline and passed its gates and validation, unless ``force`` (recorded as
  forced, with the actor and reason).
* **Compare-and-set.** A move names the version it expects to replace (``expect_from``); the
  history is a chain whose links the database makes unique, so of two writers that read the
  same head only one appends — the other re-reads and decides again, or is refused.
* **Crash order.** A move is (1) appended as ``intent``, (2) applied to MLflow, (3) marked
  ``done``. The next registry call from any process settles an intent whose holder is gone:
  it finishes the move (the intent was checked when it was written) unless the alias was moved
  elsewhere meanwhile, in which case the intent is aborted and the outside move is recorded.
* A move found made outside driftline (MLflow's UI, another tool) is recorded as ``external``
  before anything else happens, so the chain never breaks and rollback keeps walking it.

Alias moves, version look-ups and listings use MLflow's REST API against an ``http(s)://``
tracking server (:mod:`driftline.registry.backends`) and ``sqlite3`` on the embedded SQLite
database (:mod:`driftline.registry.sqlite`), so ``driftline models list | show | rollback`` do
not import MLflow; registration, loading and everything else go through ``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import DriftlineError, RefusedError, TransientError
from driftline.registry.backends import (
    _env_default,
    _first_line,
    _MlflowBackend,
    _ModelState,
    _NotFoundError,
    _quote,
    _RestBackend,
    _VersionData,
)
from driftline.registry.history import (
    MOVE_LEASE_SECONDS,
    AliasMove,
    ConflictError,
    Registration,
    RegistryStore,
    active,
    holder_id,
    previous_holder,
    settleable,
    wait,
)
from driftline.registry.runs import (
    DatasetInput,
    _as_dataset,
    _pip_requirements,
    _serialization,
    _tag_value,
    _write_artifacts,
    load_verified,
    model_hash,
)
from driftline.registry.sqlite import _SqliteBackend
from driftline.registry.sqlite import usable as sqlite_usable
from driftline.secrets import mask_url

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
"""Version tag summarising the promotion gates, for people; decisions read the store's record."""
TAG_LAST_MOVE = "driftline.last_move"
"""Registered-model tag: a one-line mirror of the last alias move (the history is in the store)."""
CHECK_TAG_PREFIXES = ("gate.", "gates.", "validation.", "skew.")
FAILED_VALUES = frozenset({"failed", "fail", "false", "error"})

RUN_TAG_KEY = "driftline.idempotency_key"
"""Run tag written when the run starts, so a crashed registration can be found again."""
RUN_TAG_MODEL_URI = "driftline.model_uri"
"""Run tag written once the model is logged: a FINISHED run with it is ready to register."""
DEFAULT_ALIASES = ("champion", "challenger")
MAX_DESCRIPTION = 5000
"""Characters of a description kept: MLflow's SQL stores declare the column VARCHAR(5000)."""
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
class Verdict:
    """What the gates and validation said of a candidate, recorded with its registration."""

    gates_passed: bool
    validation_passed: bool = True
    reasons: tuple[str, ...] = ()
    code_version: str = ""

    @property
    def passed(self) -> bool:
        return self.gates_passed and self.validation_passed


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as driftline shows it: aliases, tags, the run's metrics, provenance."""

    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str | None
    created_at: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""
    status: str = ""
    provenance: Registration | None = None

    @property
    def trigger(self) -> str | None:
        return self.tags.get(TAG_TRIGGER)

    @property
    def registered_by_driftline(self) -> bool:
        return self.provenance is not None and self.provenance.state == "registered"

    @property
    def refusal_reasons(self) -> list[str]:
        """Why the rule refuses to promote this version (empty when it may be promoted)."""
        return promotion_refusals(self)

    @property
    def gate_status(self) -> str:
        """``passed`` / ``failed`` from the store's record; ``foreign`` when driftline did not register it."""
        if not self.registered_by_driftline:
            return "foreign"
        assert self.provenance is not None
        return "passed" if self.provenance.passed else "failed"

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
        d.pop("provenance", None)
        d["aliases"] = list(self.aliases)
        d["created_at"] = self.created_at.astimezone(UTC).isoformat(timespec="milliseconds")
        d["gate_status"] = self.gate_status
        d["registered_by_driftline"] = self.registered_by_driftline
        return d


def refusal_reasons(tags: Mapping[str, str]) -> list[str]:
    """``key=value`` for every check tag whose value says it failed (display only: tags are editable)."""
    out = []
    for key in sorted(tags):
        value = str(tags[key]).strip()
        verdict = value.split(":", 1)[0].strip().lower()
        if key.startswith(CHECK_TAG_PREFIXES) and verdict in FAILED_VALUES:
            out.append(f"{key}={value if len(value) <= 80 else value[:77] + '...'}")
    return out


def promotion_refusals(info: VersionInfo) -> list[str]:
    """The one rule every alias move checks, from the store's record (never from tags)."""
    p = info.provenance
    if p is None or p.state != "registered":
        return [f"version {info.version} was not registered by driftline (no registration record in the store)"]
    out = []
    if p.model_uri and info.source and info.source != p.model_uri:
        out.append(f"version {info.version}'s source {info.source} is not the model driftline registered")
    if not p.gates_passed:
        out.append("its gates failed" + (f" ({'; '.join(p.refusals)[:300]})" if p.refusals else ""))
    if not p.validation_passed:
        out.append("its data failed validation or the skew check")
    return out


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

    Nothing happens in ``__init__``: MLflow and the store are contacted on first use. The
    experiment ``driftline/<model_name>`` holds the runs; with a database or file tracking store
    its artifacts go under ``artifact_root/<model_name>`` (an ``http(s)`` server picks its own).
    ``store_url`` is the production store that keeps the alias history and registration records
    (SQLAlchemy URL; SQLite or PostgreSQL). ``aliases`` are the alias names commands accept.
    ``checkpoint_hook`` (tests only) is called with the name of each step of a write, so a test
    can stop a write between steps the way a crash would.
    """

    checkpoint_hook: Callable[[str], None] | None = None

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        artifact_root: Path | None = None,
        *,
        store_url: str,
        aliases: Sequence[str] = DEFAULT_ALIASES,
        lock_timeout: float = 60.0,
        move_lease: float = MOVE_LEASE_SECONDS,
    ) -> None:
        self.tracking_uri = str(tracking_uri)
        self.model_name = model_name
        self.artifact_root = None if artifact_root is None else Path(artifact_root)
        self.aliases = tuple(aliases)
        self.lock_timeout = lock_timeout
        self.move_lease = move_lease
        self.store = RegistryStore(store_url)
        self._backend_obj: _MlflowBackend | _RestBackend | _SqliteBackend | None = None
        self._mlflow_backend_obj: _MlflowBackend | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ModelRegistry:
        """The registry named by driftline settings (tracking URI, model name, artifact root, store)."""
        return cls(
            settings.mlflow_tracking_uri, settings.model_name, settings.artifact_root, store_url=settings.store_url
        )

    def __repr__(self) -> str:
        return f"ModelRegistry({mask_url(self.tracking_uri)!r}, {self.model_name!r})"

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def is_http(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def where(self) -> str:
        """The tracking URI as it may be shown (password masked)."""
        return mask_url(self.tracking_uri)

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
            raise DriftlineError(f"no MLflow database at {db}: nothing is registered yet (tracking URI {self.where})")

    @property
    def _mlflow_backend(self) -> _MlflowBackend:
        if self._mlflow_backend_obj is None:
            self._mlflow_backend_obj = _MlflowBackend(self.tracking_uri, self.model_name)
        return self._mlflow_backend_obj

    @property
    def _backend(self) -> _MlflowBackend | _RestBackend | _SqliteBackend:
        """REST for a server, sqlite3 for an embedded database whose schema is known, else MlflowClient."""
        if self._backend_obj is not None:
            return self._backend_obj
        if self.is_http:
            self._backend_obj = _RestBackend(self.tracking_uri, self.model_name)
            return self._backend_obj
        db = _sqlite_path(self.tracking_uri)
        if db is not None and not db.exists():
            return self._mlflow_backend  # decided again once MLflow has created the database
        if db is not None and sqlite_usable(db):
            self._backend_obj = _SqliteBackend(db, self.model_name, lambda: self._mlflow_backend)
        else:
            self._backend_obj = self._mlflow_backend
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
            raise DriftlineError(f"no registered model '{self.model_name}' at {self.where}: register a version first")
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

    def _info(
        self,
        data: _VersionData,
        aliases: Mapping[str, str] | None = None,
        provenance: Registration | Any | None = _UNSET,
        *,
        with_metrics: bool = True,
    ) -> VersionInfo:
        if aliases is not None:
            names = tuple(sorted(a for a, v in aliases.items() if v == data.version))
        else:
            names = tuple(sorted(data.aliases))
        metrics: dict[str, float] = {}
        if data.run_id and with_metrics:
            try:
                metrics = self._backend.run_metrics(data.run_id)
            except _NotFoundError:
                metrics = {}
        if provenance is _UNSET:
            provenance = self.store.registration(self.model_name, version=data.version)
        return VersionInfo(
            version=data.version,
            aliases=names,
            tags=data.tags,
            run_id=data.run_id,
            created_at=datetime.fromtimestamp(data.created_ms / 1000, UTC),
            metrics=metrics,
            source=data.source,
            status=data.status,
            provenance=provenance,
        )

    # -- reading ------------------------------------------------------------------------------
    def get(self, version: str | int) -> VersionInfo:
        """One version with its aliases, tags, the metrics of its run and driftline's record of it."""
        data = self._version_data(version)
        return self._info(data, self._state().aliases)

    def alias_version(self, alias: str = "champion") -> str | None:
        """The version an alias points at (what serving reads), or None when it is not set.

        Settles moves left in flight by a process that died first, so a crashed promotion is
        finished by the next reader, not only by the next writer.
        """
        self._check_alias(alias)
        state = self._state_or_none()
        if state is None:
            return None
        if self._settle_quietly():
            state = self._state_or_none() or state
        return state.aliases.get(alias)

    def champion(self) -> VersionInfo | None:
        """The version serving now (alias ``champion``), or None when there is none yet."""
        version = self.alias_version("champion")
        return None if version is None else self.get(version)

    def list_versions(self) -> list[VersionInfo]:
        """Every version of the model, oldest first (empty when nothing is registered)."""
        state = self._state_or_none()
        if state is None:
            return []
        out = self._backend.search_versions()
        out.sort(key=lambda d: int(d.version))
        records = self.store.registrations(self.model_name)
        return [self._info(d, state.aliases, records.get(d.version)) for d in out]

    def history(self, alias: str | None = None) -> list[AliasMove]:
        """Recorded alias moves in the order they were made (every state; see ``AliasMove.state``)."""
        if alias is not None:
            self._check_alias(alias)
        self._settle_quietly()
        return self.store.moves(self.model_name, alias)

    # -- artifacts ------------------------------------------------------------------------------
    def list_artifacts(self, version: str | int) -> list[tuple[str, int | None]]:
        """Every file logged with the version's run, as (path, size in bytes)."""
        data = self._version_data(version)
        if not data.run_id:
            return []
        try:
            return self._backend.list_artifacts(data.run_id)
        except _NotFoundError:
            return []

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
        """Download a JSON artifact of a version and parse it (the download is removed afterwards)."""
        with tempfile.TemporaryDirectory(prefix="driftline-artifact-") as scratch:
            path = self.download_artifact(version, name, Path(scratch))
            try:
                return json.loads(path.read_text())
            except ValueError as e:
                raise DriftlineError(f"artifact '{name}' of version {version} is not valid JSON: {e}") from None

    def load(self, alias: str = "champion", *, version: str | int | None = None) -> Any:
        """Load the scikit-learn pipeline behind ``models:/NAME@alias`` (or a given version).

        Only a version driftline registered is loaded, with the serialisation and trusted types
        recorded then, after its files were checked against the recorded content hash; anything
        else fails with one line (a foreign model's code never runs).
        """
        if version is not None:
            v = self._check_version(version)
        else:
            self._check_alias(alias)
            found = self.alias_version(alias)
            if found is None:
                raise DriftlineError(f"model '{self.model_name}' has no alias '{alias}' yet")
            v = found
        data = self._version_data(v)
        record = self.store.registration(self.model_name, version=data.version)
        what = f"version {data.version} of '{self.model_name}'"
        if record is None or record.state != "registered" or not record.artifact_sha256:
            raise RefusedError(
                f"{what} was not registered by driftline: refusing to load its code "
                "(make a driftline-registered version champion, e.g. models rollback)",
                code="foreign",
            )
        if record.model_uri and data.source and data.source != record.model_uri:
            raise RefusedError(f"{what} points at {data.source}, not the model driftline registered", code="foreign")
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="driftline-model-") as tmp:
            with (
                self._mlflow_backend.translate(),
                _env_default(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),
                self._using_store(),
            ):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=record.model_uri or f"models:/{self.model_name}/{data.version}", dst_path=tmp
                )
            return load_verified(
                Path(local),
                expected_sha256=record.artifact_sha256,
                serialization=record.serialization or "",
                trusted_types=list(record.trusted_types),
                what=what,
            )

    def registration(self, version: str | int) -> Registration | None:
        """driftline's record of a version (None when driftline did not register it)."""
        return self.store.registration(self.model_name, version=self._check_version(version))

    # -- the story in MLflow ------------------------------------------------------------------------
    def outside_moves(self, aliases_now: Mapping[str, str] | None = None) -> list[Any]:
        """Aliases MLflow holds differently from driftline's recorded history (moved outside driftline).

        ``aliases_now`` are MLflow's aliases when the caller already read them (``models list``
        does); else they are read here. Returns :class:`driftline.registry.history.OutsideMove`
        records (empty when nothing differs, or before the model exists).
        """
        from driftline.registry.history import outside_moves

        if aliases_now is None:
            state = self._state_or_none()
            if state is None:
                return []
            aliases_now = state.aliases
        return outside_moves(self.store.moves(self.model_name), aliases_now, self.aliases)

    def version_description(self, version: str | int) -> str:
        """The markdown description MLflow shows for a version ('' when none was written)."""
        v = self._check_version(version)
        self._require_store()
        backend = self._mlflow_backend
        with backend.translate():
            return str(backend.client.get_model_version(self.model_name, v).description or "")

    def describe_version(self, version: str | int, description: str) -> None:
        """Write a version's markdown description (what the MLflow UI shows on the version page)."""
        v = self._check_version(version)
        backend = self._mlflow_backend
        with backend.translate():
            backend.client.update_model_version(self.model_name, v, description=description[:MAX_DESCRIPTION])

    def describe_model(self, description: str) -> None:
        """Write the registered model's markdown description (what it is, its contract, how to roll back)."""
        backend = self._mlflow_backend
        with backend.translate():
            backend.client.update_registered_model(self.model_name, description=description[:MAX_DESCRIPTION])

    def ui_url(self, version: str | int | None = None) -> str | None:
        """The MLflow UI page of the model (or of one version) for an http(s) tracking server, else None."""
        if not self.is_http:
            return None
        base = f"{self.where.rstrip('/')}/#/models/{self.model_name}"
        return base if version is None else f"{base}/versions/{self._check_version(version)}"

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
        verdict: Verdict,
        datasets: Sequence[DatasetInput | tuple] = (),
        idempotency_key: str,
        run_name: str | None = None,
        target: str | None = None,
        register_timeout: float = 900.0,
    ) -> RegisteredVersion:
        """Log a candidate as one MLflow run and register it as a version, at most once per key.

        The key is claimed in driftline's store first (one claim per key, whatever the host); a
        key already registered returns its version with ``created=False``, and a claim held by a
        live process is waited for. A FINISHED run of an earlier attempt that crashed before
        registering (found by its run tag) is registered instead of logging a new run; runs left
        RUNNING by a crashed process are marked KILLED. The model files are hashed as stored and
        the hash, serialisation and ``verdict`` recorded, so promotion and loading never rely on
        tags. ``artifacts`` maps a file name in the run to its content: a dict or list becomes
        JSON, a str is written as text, a Path is copied. ``datasets`` are logged as dataset
        inputs: ``DatasetInput`` or tuples ``(frame, name, context[, targets])``.
        """
        key = str(idempotency_key)
        if not _KEY_RE.match(key):
            raise DriftlineError(f"idempotency key {key!r} must be 1-200 characters of letters, digits and _.:/+=@-")
        version_tags = {str(k): _tag_value(v) for k, v in tags.items()}
        version_tags[TAG_IDEMPOTENCY] = key
        dataset_inputs = [_as_dataset(d, target) for d in datasets]
        self._require_store(create=True)
        me = holder_id()
        deadline = time.monotonic() + register_timeout
        while True:
            record = self.store.claim(
                self.model_name,
                key,
                gates_passed=verdict.gates_passed,
                validation_passed=verdict.validation_passed,
                refusals=verdict.reasons,
                code_version=verdict.code_version,
            )
            if record.state == "registered" and record.version:
                return RegisteredVersion(version=record.version, run_id=record.run_id or "", created=False)
            if record.holder == me:
                break
            wait(deadline, f"another process ({record.holder}) is registering {key}")
            time.sleep(0.5)
        backend = self._mlflow_backend
        with active("registration", key), self._using_store() as mlflow:
            found = self._version_by_key(key)
            if found is not None and record.run_id and found[1] == record.run_id:
                # Registered before a crash stopped the record: finish the record only.
                self.store.update_registration(self.model_name, key, state="registered", version=found[0])
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
            assert model_uri is not None
            digest, serialization, trusted = self._fingerprint(model_uri)
            self.store.update_registration(
                self.model_name,
                key,
                state="logged",
                run_id=run_id,
                model_uri=model_uri,
                artifact_sha256=digest,
                serialization=serialization,
                trusted_types=trusted,
            )
            self._checkpoint("before_register")
            # register_model prints "Successfully registered ..." to stderr; the caller reports instead.
            with backend.translate(), contextlib.redirect_stderr(io.StringIO()):
                mv = mlflow.register_model(model_uri, self.model_name, tags=version_tags)
            self._checkpoint("registered")
            self.store.update_registration(self.model_name, key, state="registered", version=str(mv.version))
            self._checkpoint("recorded")
        return RegisteredVersion(version=str(mv.version), run_id=run_id, created=True)

    def _fingerprint(self, model_uri: str) -> tuple[str, str, list[str]]:
        """Content hash of the logged model as stored, its serialisation and skops trusted types."""
        import mlflow.artifacts
        import yaml

        with (
            tempfile.TemporaryDirectory(prefix="driftline-model-") as tmp,
            self._mlflow_backend.translate(),
            _env_default(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),
        ):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
            conf = (yaml.safe_load((local / "MLmodel").read_text()) or {}).get("flavors", {}).get("sklearn", {})
            return (
                model_hash(local),
                str(conf.get("serialization_format", "")),
                list(conf.get("skops_trusted_types") or []),
            )

    def find_by_key(self, idempotency_key: str) -> RegisteredVersion | None:
        """The version driftline registered under ``idempotency_key`` (created=False), if any."""
        record = self.store.registration(self.model_name, key=str(idempotency_key))
        if record is None or record.state != "registered" or not record.version:
            return None
        return RegisteredVersion(record.version, record.run_id or "", created=False)

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

        experiment_id = self._experiment_id()
        serialization, trusted = _serialization(pipeline)
        requirements = _pip_requirements(serialization)
        with self._mlflow_backend.translate(), warnings.catch_warnings():
            # MLflow warns that integer columns cannot hold missing values; the contract decides that.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = _signature(input_example, pipeline)
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
                    pyfunc_predict_fn="predict_proba" if hasattr(pipeline, "predict_proba") else "predict",
                    skops_trusted_types=trusted,
                )
                self._checkpoint("model_logged")
                mlflow.set_tag(RUN_TAG_MODEL_URI, info.model_uri)
        return run.info.run_id, info.model_uri

    # -- alias moves --------------------------------------------------------------------------
    def repair(self) -> list[AliasMove]:
        """Settle every move left in flight by a process that is gone; return the settled records."""
        self._state()
        out = []
        for move in self.store.in_flight(self.model_name):
            if settleable(move.holder, move.expires_us, ("move", move.seq)):
                settled = self._settle_one(move)
                if settled is not None:
                    out.append(settled)
        return out

    def _settle_quietly(self) -> bool:
        """A reader's repair: settle what can be settled now; never wait, and never fail the read."""
        try:
            pending = self.store.in_flight(self.model_name)
            if not any(settleable(m.holder, m.expires_us, ("move", m.seq)) for m in pending):
                return False
            return bool(self.repair())
        except (DriftlineError, _NotFoundError):
            return False

    def _settle_one(self, move: AliasMove) -> AliasMove | None:
        """Finish an intent whose holder is gone, or abort it when the alias went elsewhere."""
        actual = self._backend.model_state().aliases.get(move.alias)
        if actual == move.to_version:
            state, note = "done", "completed by repair: the alias had moved"
        elif actual == move.from_version:
            # The move was checked (rule, compare-and-set) when its intent was written: finish it,
            # unless someone settled it first (only the one who wins the row may touch MLflow).
            if not self.store.renew(move.seq, move.holder, self.move_lease, new_holder=holder_id()):
                return None
            try:
                self._apply_alias(move.alias, move.to_version)
                state, note = "done", "completed by repair after the process that started it stopped"
            except _NotFoundError:
                state, note = "aborted", f"aborted by repair: version {move.to_version} no longer exists"
        else:
            state, note = (
                "aborted",
                f"aborted by repair: {move.alias} is at {actual or 'unset'} (moved outside driftline)",
            )
        if not self.store.settle(move.seq, state, note):
            return None
        settled = replace(move, state=state, note=note)
        if state == "done":
            self._mirror(settled)
        return settled

    def _apply_alias(self, alias: str, version: str | None) -> None:
        """Point ``alias`` at ``version`` in MLflow, or remove it (None)."""
        if version is None:
            with contextlib.suppress(_NotFoundError):
                self._backend.delete_alias(alias)
        else:
            self._backend.set_alias(alias, version)

    def clear_alias(self, alias: str, *, reason: str, actor: str, expect_from: str | None = _UNSET) -> AliasMove:
        """Remove ``alias`` through the same compare-and-set path (``champion`` cannot be cleared)."""
        self._check_alias(alias)
        if alias == "champion":
            raise RefusedError("the champion alias cannot be cleared; roll back to a version instead", code="refused")
        return self._move(alias, lambda _c, _m: None, kind="clear", reason=reason, actor=actor, expect_from=expect_from)

    def _mirror(self, move: AliasMove) -> None:
        """One line on the registered model saying what the last move was (best effort)."""
        with contextlib.suppress(DriftlineError, _NotFoundError):
            self._backend.set_model_tag(TAG_LAST_MOVE, move.one_line(self.model_name))

    def set_alias(
        self,
        alias: str,
        version: str | int,
        *,
        reason: str,
        actor: str,
        expect_from: str | None = _UNSET,
        kind: str = "set",
        force: bool = False,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` under the rule (see ``promote``) and record the move.

        ``expect_from`` makes the move conditional: it is refused when the alias does not point
        there any more (None = the alias must be unset), so a decision taken on a stale view
        (e.g. a flow that compared against the old champion) is not applied.
        """
        self._check_alias(alias)
        v = self._check_version(version)
        return self._move(
            alias, lambda _c, _m: v, kind=kind, reason=reason, actor=actor, expect_from=expect_from, force=force
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
        """Move ``alias`` to ``version`` when driftline registered it and its gates and validation passed.

        With ``force`` such a version is promoted anyway and the record says so (forced, with the
        reasons it was refused). ``expect_from``: see ``set_alias``.
        """
        self._check_alias(alias)
        v = self._check_version(version)
        return self._move(
            alias, lambda _c, _m: v, kind="promote", reason=reason, actor=actor, expect_from=expect_from, force=force
        )

    def rollback(
        self,
        *,
        to_version: str | int | None = None,
        previous: bool = False,
        reason: str,
        actor: str,
        alias: str = "champion",
        force: bool = False,
        expect_from: str | None = _UNSET,
    ) -> AliasMove:
        """Move ``champion`` back: to ``to_version``, or to the previous champion (``previous``).

        Only the alias moves: no retraining, no redeploy. The previous champion comes from the
        recorded history read as an undo stack (see :func:`previous_holder`): after promotions
        1 -> 2 -> 3, ``previous`` goes to 2, then to 1, never back to 3. The target passes the same
        rule as a promotion unless ``force``.
        """
        self._check_alias(alias)
        if (to_version is None) == (not previous):
            raise DriftlineError("rollback needs exactly one target: a version or previous")
        if to_version is not None:
            v = self._check_version(to_version)
            return self._move(
                alias,
                lambda _c, _m: v,
                kind="rollback",
                reason=reason,
                actor=actor,
                expect_from=expect_from,
                force=force,
            )

        def previous_of(current: str | None, moves: Callable[[], list[AliasMove]]) -> str:
            if current is None:
                raise RefusedError(f"model '{self.model_name}' has no {alias} to roll back from", code="no_previous")
            target = previous_holder(moves(), alias, current)
            if target is None:
                raise RefusedError(
                    f"no {alias} before version {current} is recorded for model '{self.model_name}': "
                    "this is the bottom of the lineage; name the version to roll back to",
                    code="no_previous",
                )
            return target

        return self._move(
            alias, previous_of, kind="rollback", reason=reason, actor=actor, expect_from=expect_from, force=force
        )

    def _move(
        self,
        alias: str,
        target: Callable[[str | None, Callable[[], list[AliasMove]]], str | None],
        *,
        kind: str,
        reason: str,
        actor: str,
        expect_from: str | None = _UNSET,
        force: bool = False,
    ) -> AliasMove:
        """One compare-and-set move: settle, record outside moves, check, intent, apply, done."""
        reason = self._check_text("reason", reason)
        actor = self._check_text("actor", actor)
        self._state()  # the model must exist; says so in one line otherwise
        me = holder_id()
        deadline = time.monotonic() + self.lock_timeout
        while True:
            head = self.store.head(self.model_name, alias)
            if head is not None and head.state == "intent":
                if settleable(head.holder, head.expires_us, ("move", head.seq)):
                    self._settle_one(head)
                else:
                    wait(
                        deadline,
                        f"move #{head.seq} of {alias} to version {head.to_version} by {head.actor} is in flight",
                    )
                continue
            prev = head.seq if head is not None else 0
            expected = head.result if head is not None else None
            actual = self._backend.model_state().aliases.get(alias)
            if actual != expected:
                # Moved outside driftline (MLflow's UI, another client): record it, then decide on it.
                seen = AliasMove(
                    seq=0,
                    when=_now(),
                    actor="outside driftline",
                    alias=alias,
                    from_version=expected,
                    to_version=actual,
                    reason="found moved outside driftline (MLflow UI or another client)",
                    kind="external",
                    state="done",
                    prev_seq=prev,
                )
                with contextlib.suppress(ConflictError):
                    self.store.append(self.model_name, seen)
                continue
            current = actual
            if expect_from is not _UNSET and current != (None if expect_from is None else str(expect_from)):
                raise RefusedError(
                    f"{alias} is at version {current or 'unset'}, expected {expect_from or 'unset'}: "
                    "it moved since this decision was taken; nothing changed",
                    code="moved",
                )
            to_version = target(current, lambda: self.store.moves(self.model_name, alias))
            base = AliasMove(0, _now(), actor, alias, current, to_version, reason, kind=kind, prev_seq=prev)
            if current == to_version:
                return replace(base, changed=False, note=f"{alias} already at {to_version}")
            refusals = (
                []
                if to_version is None
                else promotion_refusals(self._info(self._version_data(to_version), with_metrics=False))
            )
            if refusals and not force:
                raise RefusedError(
                    f"version {to_version} may not become {alias}: {'; '.join(refusals)}; nothing changed",
                    code="not_promotable",
                )
            intent = replace(
                base,
                state="intent",
                forced=bool(refusals),
                note=f"forced past: {'; '.join(refusals)}" if refusals else "",
                holder=me,
            )
            try:
                intent = self.store.append(self.model_name, intent, lease=self.move_lease)
            except ConflictError:
                continue  # another writer appended first: look again, decide again
            with active("move", intent.seq):
                self._checkpoint("intent_written")
                # Still ours? A writer that stalled past its lease may have been settled by
                # another process (and the alias moved on since): then it must not touch MLflow.
                if not self.store.renew(intent.seq, me, self.move_lease):
                    settled = self.store.get_move(intent.seq)
                    if settled is not None and settled.state == "done":
                        return settled  # another process finished this very move for us
                    raise TransientError(
                        f"move #{intent.seq} of {alias} stalled past its lease and was settled by another "
                        f"process as {settled.state if settled else 'missing'}; nothing changed (see models history)"
                    )
                try:
                    self._apply_alias(alias, to_version)
                except Exception as e:
                    with contextlib.suppress(DriftlineError):
                        self.store.settle(intent.seq, "aborted", f"aborted: {_first_line(e)}"[:500])
                    raise
                self._checkpoint("alias_moved")
                if not self.store.settle(intent.seq, "done"):
                    self._heal(alias, intent)
                self._checkpoint("recorded")
            done = replace(intent, state="done", holder="", expires_us=0)
            self._mirror(done)
            return done

    def _heal(self, alias: str, intent: AliasMove) -> None:
        """Our intent was settled by someone else while we applied it: put MLflow back on the chain."""
        head = self.store.head(self.model_name, alias)
        if head is not None and head.seq != intent.seq and head.state == "done" and head.to_version:
            self._backend.set_alias(alias, head.to_version)
            raise TransientError(
                f"move #{intent.seq} of {alias} was overtaken by #{head.seq} while it ran; {alias} is back at "
                f"version {head.to_version} as recorded (see models history)"
            )
        settled = self.store.get_move(intent.seq)
        if settled is None or settled.state != "done":
            raise TransientError(
                f"move #{intent.seq} of {alias} was settled by another process as "
                f"{settled.state if settled else 'missing'} while this one was slow; see models history"
            )


# -- helpers ----------------------------------------------------------------------------------
def _signature(example: pd.DataFrame, pipeline: Any) -> Any:
    """The model's signature: numeric inputs accept ints and floats alike, the output is scores.

    MLflow's inferred schema pins a numeric column to the example's dtype and then refuses
    traffic of the other (int64 is not "safely" convertible to float64), so numeric columns are
    declared as any type — the pipeline's own preprocessing reads them; text and boolean columns
    keep their types. The pyfunc output is ``predict_proba`` (the scores monitoring needs), not labels.
    """
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    numeric = [
        c
        for c in example.columns
        if pd.api.types.is_numeric_dtype(example[c]) and not pd.api.types.is_bool_dtype(example[c])
    ]
    output = pipeline.predict_proba(example) if hasattr(pipeline, "predict_proba") else pipeline.predict(example)
    inferred = infer_signature(example, output)
    cols = [
        ColSpec(AnyType(), spec.name, required=spec.required) if spec.name in numeric else spec
        for spec in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(cols), outputs=inferred.outputs)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
