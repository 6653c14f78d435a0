"""One settings object for everything driftline does.

Sources, strongest first: explicit overrides (CLI flags, flow parameters), ``DRIFTLINE_*``
environment variables (nested fields with ``__``, e.g. ``DRIFTLINE_DRIFT__PSI_WARN``), the
YAML file (``driftline.yaml`` or the path in ``DRIFTLINE_CONFIG``), then defaults. All state
lives under ``home`` (``.driftline/`` unless ``DRIFTLINE_HOME`` names another folder).

Hygiene: settings and contract files must be regular files (no FIFOs or devices) of at most
1 MiB of UTF-8 YAML without aliases (``*name``; this refuses "billion laughs" expansion).
``DRIFTLINE_HOME``, ``DRIFTLINE_CONFIG``, ``DRIFTLINE_CONTRACT`` and ``DRIFTLINE_STORE_URL``
set to empty text are errors. A ``DRIFTLINE_*`` variable that is neither a setting nor one of
:data:`NON_SETTINGS_ENV` is ignored with a one-line warning on stderr naming the nearest field.
"""

from __future__ import annotations

import difflib
import itertools
import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from driftline.errors import ConfigError, describe_validation_error

DEFAULT_CONFIG = "driftline.yaml"
MAX_YAML_BYTES = 1 << 20
NON_SETTINGS_ENV = frozenset(
    {
        "DRIFTLINE_CONFIG",
        "DRIFTLINE_ADMIN_TOKEN",
        "DRIFTLINE_TEST_PG_URL",
        "DRIFTLINE_CHROMIUM",
        "DRIFTLINE_CI_PG_PORT",
        "DRIFTLINE_MAX_INPUT_BYTES",
        "DRIFTLINE_SERVE_POLL_SECONDS",
    }
)
"""``DRIFTLINE_*`` variables read elsewhere (not settings fields): never warned about."""
_NOT_EMPTY_ENV = ("DRIFTLINE_HOME", "DRIFTLINE_CONFIG", "DRIFTLINE_CONTRACT", "DRIFTLINE_STORE_URL")
_warned: set[str] = set()


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is an existing regular file.

    Raises :class:`ConfigError` (exit 2) for a missing path, a directory, a FIFO, a socket or a
    device: reading those would block or never end.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        # "settings file not found"; "cannot read contract (not found)" reads better for a contract.
        raise ConfigError(
            f"{p}: {what} not found" if what == "settings file" else f"{p}: cannot read {what} (not found)"
        ) from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{p}: is a directory, expected a {what}")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{p}: not a regular file (FIFO, socket or device); refused as {what}")
    return p


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, so a tiny file cannot expand into a huge document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, what: str = "settings file") -> Any:
    """Parse a regular, at most 1 MiB, alias-free UTF-8 YAML file; ConfigError (one line) otherwise."""
    p = regular_file(path, what)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read {what} ({e.strerror or e})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: {what} is larger than {MAX_YAML_BYTES:,} bytes; refused")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not valid UTF-8") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        detail = f": {problem}" if problem and "alias" in str(problem) else " is not valid YAML"
        raise ConfigError(f"{p}:{where}{detail}") from None


def _check_environment() -> None:
    """Refuse empty path/URL variables; warn once about unknown ``DRIFTLINE_*`` variables."""
    for key in _NOT_EMPTY_ENV:
        if key in os.environ and not os.environ[key].strip():
            raise ConfigError(f"{key} is set but empty: unset it or give a value")
    fields = {name.upper(): name for name in Settings.model_fields}
    for key in sorted(os.environ):
        upper = key.upper()
        if not upper.startswith("DRIFTLINE_") or upper in NON_SETTINGS_ENV or upper in _warned:
            continue
        top = upper.removeprefix("DRIFTLINE_").split("__", 1)[0]
        if top in fields:
            continue
        _warned.add(upper)
        near = difflib.get_close_matches(top, list(fields), n=1, cutoff=0.5)
        hint = f" (did you mean DRIFTLINE_{near[0]}?)" if near else ""
        sys.stderr.write(f"warning: {key} is not a driftline setting{hint}; ignored\n")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Windows(_Section):
    """Time windows, in whole weeks and days."""

    train_weeks: int = Field(default=8, ge=1)
    test_weeks: int = Field(default=1, ge=1)
    label_delay_days: int = Field(default=7, ge=0)
    backtest_folds: int = Field(default=3, ge=0)
    monitor_days: int = Field(default=1, ge=1, description="Window of the daily drift monitor.")
    recent_days: int = Field(
        default=7, ge=1, description="Recent production window the weekly run checks for drift and skew."
    )
    week_start: Literal["monday", "sunday"] = "monday"
    candidate_train_weeks: list[int] = Field(
        default_factory=list,
        description="Other training windows (weeks) compared with train_weeks on the backtest folds; the best trains.",
    )

    @model_validator(mode="after")
    def _candidates(self) -> Windows:
        if any(w < 1 for w in self.candidate_train_weeks):
            raise ValueError(f"candidate_train_weeks must be whole weeks >= 1, got {self.candidate_train_weeks}")
        return self

    @property
    def train_week_options(self) -> list[int]:
        """train_weeks first, then the other candidates, each once."""
        return list(dict.fromkeys([self.train_weeks, *self.candidate_train_weeks]))


class DriftSettings(_Section):
    """Drift measurement and the trigger policy's thresholds."""

    bins: int = Field(default=10, ge=2)
    smoothing: float = Field(default=1e-4, gt=0)
    psi_warn: float = Field(default=0.1, ge=0)
    psi_alert: float = Field(default=0.25, ge=0)
    min_rows: int = Field(default=100, ge=1)
    small_sample_quantile: float = Field(default=0.95, gt=0, lt=1)
    warn_features_for_retrain: int = Field(default=3, ge=1)
    metric_drop_investigate: float = Field(default=0.03, ge=0)
    metric_drop_retrain: float = Field(default=0.10, ge=0)
    min_labelled_rows: int = Field(
        default=200, ge=1, description="The metric trigger needs at least this many labelled test rows."
    )
    min_labelled_positives: int = Field(default=20, ge=1, description="... and at least this many positives.")
    metric_drop_confidence: float = Field(
        default=0.9,
        gt=0.5,
        lt=1,
        description="A metric drop counts when its one-sided upper bound at this confidence is below the reference.",
    )
    investigate_escalate_weeks: int = Field(
        default=4,
        ge=0,
        description="Weeks in a row of 'investigate' for one champion after which the policy retrains (0: never).",
    )
    metric_cusum_slack: float = Field(
        default=0.5,
        ge=0,
        description="CUSUM slack k: the weekly metric shortfall, in combined standard errors, tolerated as noise.",
    )
    metric_cusum_threshold: float = Field(
        default=3.5,
        ge=0,
        description="CUSUM threshold h: retrain when the champion's accumulated shortfall reaches it (0: off).",
    )
    metric_drop_single_week_se: float = Field(
        default=2.33,
        ge=0,
        description="With the CUSUM on, one week at the retrain band retrains alone only with a shortfall of at "
        "least this many combined standard errors (2.33: one-sided 99%); below, it investigates.",
    )
    calibration_gap: float = Field(
        default=0.25,
        ge=0,
        description="Retrain when the labelled positive rate differs from the champion's mean score by at least "
        "this much (relative) and by calibration_z standard errors: the base rate moved (0: off).",
    )
    calibration_z: float = Field(
        default=4.0, gt=0, description="How many standard errors the calibration gap must exceed (see calibration_gap)."
    )
    settle_weeks: int = Field(
        default=3,
        ge=0,
        description="After a triggered retrain was promoted, retrain again each week while the previous one "
        "promoted, at most this many more weeks (the new regime settling; 0: off).",
    )
    reference_min_rows: int = Field(
        default=1000, ge=1, description="Rows a version's drift reference needs; the test week is topped up to it."
    )
    segment_min_rows: int = Field(default=200, ge=1)
    cooldown_hours: float = Field(
        default=168.0, ge=0, description="One alert per drift episode (champion version) within this many hours."
    )
    small_sample_alert_quantile: float = Field(
        default=0.999,
        gt=0,
        lt=1,
        description="Unchanged data reaches a feature's effective alert band in at most 1 - this share of windows.",
    )
    adaptive_bands: bool = Field(
        default=True,
        description="Raise PSI bands of small windows to what unchanged data of that size reaches; false: fixed.",
    )
    band_draws: int = Field(default=4000, ge=100, description="Monte Carlo draws for the sample-size-aware PSI band.")
    band_seed: int = Field(default=0, description="Seed of the Monte Carlo band draws (results are reproducible).")
    segments_investigate: bool = Field(
        default=False, description="A segment with a feature at alert makes the trigger policy say 'investigate'."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DriftSettings:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi_alert ({self.psi_alert})")
        return self


class SamplingSettings(_Section):
    """Refreshing the test set from production samples."""

    test_size: int = Field(default=5000, ge=10)
    tail_cap: float = Field(default=0.1, ge=0, le=1, description="Max share of the sample kept for the long tail.")
    rare_share: float = Field(default=0.01, gt=0, lt=1, description="A category below this share is 'rare'.")
    extreme_quantile: float = Field(default=0.01, gt=0, lt=0.5)


class TrainingSettings(_Section):
    """How candidates are trained."""

    estimator: str = "hist_gradient_boosting"
    seed: int = 0
    class_balance: bool = False
    feedback_weight: float = Field(default=1.0, gt=0)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    retrain_on_schedule: bool = Field(
        default=False, description="Retrain on every scheduled run, not only when a trigger fires."
    )
    min_train_rows: int = Field(default=200, ge=1)
    training_sample_rows: int = Field(
        default=20000, ge=100, description="Rows of training data kept with a version for later skew checks."
    )
    estimator_params: dict[str, int | float | str | bool | None] = Field(
        default_factory=dict,
        description="Keyword arguments for the estimator (e.g. max_iter), applied over driftline's defaults.",
    )


class GateSettings(_Section):
    """What a candidate must show before it is promoted."""

    primary_metric: Literal["average_precision", "roc_auc", "f1", "precision", "recall"] = "average_precision"
    margin: float = Field(
        default=0.0,
        description="The paired interval's lower bound of candidate - champion must exceed this (a tie never does).",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Confidence of the bootstrap intervals.")
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    auto_promote: bool = Field(
        default=False,
        description=(
            "Promote a passing candidate at once (True), or leave it as challenger for the rollout (False). "
            "The first version of a model is always promoted: there is no champion to roll out against."
        ),
    )


class RolloutSettings(_Section):
    """How a challenger goes from shadow to serving everyone (see ``driftline.rollout``)."""

    steps: list[float] = Field(
        default=[1.0, 5.0, 10.0, 25.0, 50.0, 100.0],
        description="Canary shares in percent, increasing, ending at 100 (then the challenger is promoted).",
    )
    shadow_share: float = Field(default=100.0, gt=0, le=100, description="Percent of requests shadow-scored.")
    interval_seconds: float = Field(default=300.0, gt=0, description="Time between two rollout decisions.")
    min_shadow_requests: int = Field(default=500, ge=1, description="Shadow-scored requests before shadow can pass.")
    min_requests: int = Field(default=200, ge=1, description="Challenger-served requests before a step can pass.")
    min_labelled: int = Field(
        default=100, ge=1, description="Labelled rows of each variant before the quality guardrail can pass."
    )
    min_positives: int = Field(default=10, ge=1, description="Positive labels of each variant, likewise.")
    require_labels: bool = Field(
        default=True, description="Canary steps need labelled outcomes to pass (False: operational checks only)."
    )
    hold_drop: float = Field(default=0.03, ge=0, description="Relative metric drop that holds a step (investigate).")
    revert_drop: float = Field(default=0.10, gt=0, description="Relative metric drop that reverts the rollout.")
    min_agreement: float = Field(
        default=0.5, ge=0, le=1, description="Shadow: share of requests labelled alike below which the rollout reverts."
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Shadow/challenger failures that revert.")
    latency_ratio: float = Field(
        default=2.0, gt=0, description="Challenger p99 latency above this times the champion's (+5 ms) reverts."
    )

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, v: list[float]) -> list[float]:
        if not v or any(b <= a for a, b in itertools.pairwise(v)) or v[-1] != 100 or v[0] <= 0:
            raise ValueError("steps must increase, start above 0 and end at 100")
        return v


class FeedbackSettings(_Section):
    """Production errors fed back into training, and the human review queue (``driftline.feedback``)."""

    enabled: bool = Field(default=True, description="Collect misclassified production rows and train on them.")
    max_share: float = Field(
        default=0.2, ge=0, le=0.5, description="Feedback rows are at most this share of a window's training rows."
    )
    confident: float = Field(
        default=0.9, gt=0.5, lt=1, description="An error is 'confident' when the model gave the wrong class ≥ this."
    )
    max_age_weeks: int = Field(
        default=26, ge=1, description="Pool rows older than this (before the test window) age out."
    )
    near_threshold: float = Field(
        default=0.05, ge=0, lt=0.5, description="Unlabelled rows within this of the threshold go to review."
    )
    max_queue_per_run: int = Field(default=1000, ge=0, le=100_000, description="Rows one run may add to review.")
    max_import_rows: int = Field(default=100_000, ge=1, description="Rows one reviewed file may hold.")


class EdgeCaseSettings(_Section):
    """The edge-case suite mined from the logs and its promotion gate (``driftline.edgecases``)."""

    enabled: bool = True
    mine_weeks: int = Field(default=4, ge=1, description="Weeks of labelled log rows the worst slices are mined from.")
    min_slice_rows: int = Field(default=30, ge=5, description="Rows a slice needs to be mined or gated.")
    min_excess: float = Field(
        default=0.05, ge=0, description="A mined slice's champion loss is at least this much (relative) above global."
    )
    fdr: float = Field(
        default=0.05, gt=0, lt=1, description="False discovery rate of the mined slices (Benjamini-Hochberg)."
    )
    max_slices: int = Field(default=20, ge=1, le=200, description="Worst slices kept (others: rare, extreme, unseen).")
    bins: int = Field(default=5, ge=2, le=20, description="Quantile bins of each key numeric feature.")
    margin: float = Field(
        default=0.02, ge=0, description="Brier score a candidate may lose to the champion on a slice before it fails."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Familywise error of the per-slice gate (Holm).")
    nudge: float = Field(default=0.01, gt=0, lt=0.5, description="Relative numeric nudge of the perturbation test.")
    perturb_rows: int = Field(default=2000, ge=10, le=100_000, description="Rows the perturbation test uses.")
    max_flip_rate: float = Field(
        default=0.05, ge=0, le=1, description="Share of predictions a nudge may flip (unless the champion's is higher)."
    )
    flip_margin: float = Field(
        default=0.02, ge=0, le=1, description="How far above the champion's flip rate a candidate may go (noise)."
    )


class ScaleSettings(_Section):
    """Past one machine: the Dask cluster for work that splits, and where home-relative outputs go."""

    dask_address: str | None = Field(
        default=None,
        description="A distributed scheduler (tcp://host:8786) for work that splits (backtest folds, partitions of a "
        "large window); None: that work runs in the flow's own process, without Dask.",
    )
    outputs: str | None = Field(
        default=None,
        description="Folder or URL (s3://bucket/prefix) for outputs kept by path: test sets and reports; "
        "None: under home. ``home: s3://...`` sets it.",
    )

    @field_validator("dask_address", "outputs")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty (leave it out for the default)")
        return v


def is_url(location: str | Path) -> bool:
    """True for ``scheme://...`` text other than ``file://`` (an object store, not this host's disk)."""
    text = str(location)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() != "file"


def _scratch_home() -> Path:
    """A per-process local folder for scratch files when ``home`` names an object store."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"driftline-scratch-{os.getpid()}"


class Settings(BaseSettings):
    """Validated settings; build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Path(".driftline")
    contract: Path | None = None
    store_url: str | None = None
    mlflow_tracking_uri: str | None = None
    model_name: str = "driftline-churn"
    windows: Windows = Windows()
    drift: DriftSettings = DriftSettings()
    sampling: SamplingSettings = SamplingSettings()
    training: TrainingSettings = TrainingSettings()
    gates: GateSettings = GateSettings()
    rollout: RolloutSettings = RolloutSettings()
    scale: ScaleSettings = ScaleSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    edge_cases: EdgeCaseSettings = EdgeCaseSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file, environment and overrides itself, in that order.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _home_url(cls, data: Any) -> Any:
        """``home: s3://bucket/prefix``: outputs go there; scratch stays local and per process."""
        if not isinstance(data, dict) or not is_url(data.get("home") or ""):
            return data
        data = dict(data)
        url = str(data.pop("home")).rstrip("/")
        missing = [k for k in ("store_url", "mlflow_tracking_uri") if not data.get(k)]
        if "mlflow_tracking_uri" in missing and os.environ.get("MLFLOW_TRACKING_URI"):
            missing.remove("mlflow_tracking_uri")
        if missing:
            raise ValueError(
                f"home {url!r} is an object store, so the store and MLflow cannot live under it: "
                f"set {' and '.join(missing)} (e.g. postgresql://... and http://mlflow:5000)"
            )
        scale = dict(data.get("scale") or {})
        scale.setdefault("outputs", url)
        data["scale"], data["home"] = scale, _scratch_home()
        return data

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.store_url is None:
            self.store_url = f"sqlite:///{self.home / 'store.db'}"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"
        return self

    # -- derived locations -------------------------------------------------------------
    @property
    def artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def outputs_root(self) -> str:
        """Where test sets and reports are kept: ``scale.outputs`` (a folder or an s3:// URL), else home."""
        return (self.scale.outputs or str(self.home)).rstrip("/")

    def output_location(self, *parts: str) -> str:
        """``outputs_root/part/...`` as text (a local path or a URL; see :mod:`driftline.io`)."""
        return "/".join([self.outputs_root, *(p.strip("/") for p in parts)])

    def ensure_home(self) -> Path:
        """Create the state folder (called by commands that write, never at import)."""
        for d in (self.home, self.artifact_root, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self.home


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def config_path(path: str | Path | None = None) -> Path:
    """The settings file in force: an explicit path, ``DRIFTLINE_CONFIG``, or ``driftline.yaml``."""
    return Path(path or os.environ.get("DRIFTLINE_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read, merge and validate settings; raise ConfigError with one precise line on failure.

    A missing default file is fine (defaults apply); a missing file that was named explicitly
    (argument or ``DRIFTLINE_CONFIG``) is an error.
    """
    _check_environment()
    p = config_path(path)
    named = path is not None or "DRIFTLINE_CONFIG" in os.environ
    data: dict[str, Any] = {}
    if p.exists() or p.is_symlink() or named:
        loaded = read_yaml(p, "settings file")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = loaded or {}
        # Relative paths in the file are relative to the file.
        for key in ("home", "contract"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute() and not is_url(data[key]):
                data[key] = str(p.parent / data[key])
    try:
        env = EnvSettingsSource(Settings, env_prefix="DRIFTLINE_", env_nested_delimiter="__", case_sensitive=False)()
    except SettingsError as e:  # e.g. DRIFTLINE_WINDOWS='{bad' is not JSON
        raise ConfigError(f"DRIFTLINE_* environment: {' '.join(str(e).split())}") from None
    merged = _deep_merge(_deep_merge(data, env), {k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings(**merged)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(f"{p} (or DRIFTLINE_* environment)", e)) from None
    return settings
