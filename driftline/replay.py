"""Policy replay: replay the production history under retraining policies and compare them.

For each policy (``never``, ``weekly``, ``drift`` with optional threshold overrides) the weeks
are walked in order and :func:`driftline.pipeline.run_week` runs every week (the same steps
the weekly flow runs) against a scratch registry — its own SQLite MLflow and alias history in a
temporary folder — and a read-only, in-memory view of the real store. The real registry is
never opened and the real store is only read (one pass, at the start).

The first week is the bootstrap: a model is trained on the history available then (every
policy starts from it). Week ``w``'s labelled production traffic (every logged row of the week
with its outcome, whenever it arrived) is scored with the model the policy served after that
week's run. A candidate that passes the gates is taken as promoted at once (the rollout it
would wait for is assumed to succeed); ``never`` keeps the bootstrap model.

The **oracle** retrains every week and serves each new candidate without gates (it is the
``weekly`` run's candidate). The never-retrained model's **loss** is the sum over the weeks
after the bootstrap of ``oracle - never``; a policy's **recovery** is its own sum of
``policy - never`` over the same weeks divided by that loss.

Work is shared across policies where it coincides: the store is read once; a week's window and
backtest are computed once; the refreshed test set, the data checks, the trained candidate and
the gates are cached on their actual inputs (the week, the champion's vocabulary, the lineage of
the champion), and a model's weekly metric is computed once per model. The feedback pool is
switched off (it writes to the store); the edge-case gates run as in production. Training seconds are
charged to every policy that used a result, as production would have spent them.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.errors import DriftlineError, InputError
from driftline.values import finite as _finite

POLICY_KINDS = ("never", "weekly", "drift")
ORACLE = "oracle"
DEFAULT_RUN_HOUR = 3  # the weekly deployment's schedule: Mondays 03:00
DEFAULT_RESAMPLES = 200
DEFAULT_MIN_RECOVERY = 0.9
TRAINING_STEPS = ("backtest", "train-candidate")


# -- policies ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """A retraining policy: its name as given, its kind and the drift settings it overrides."""

    name: str
    kind: str
    drift: dict[str, Any] = field(default_factory=dict)

    def settings_for(self, base: Any) -> Any:
        """``base`` settings with this policy's trigger behaviour and drift thresholds."""
        from pydantic import ValidationError

        from driftline.errors import describe_validation_error
        from driftline.settings import DriftSettings

        try:
            drift = DriftSettings.model_validate({**base.drift.model_dump(), **self.drift})
        except ValidationError as e:
            raise InputError(describe_validation_error(f"--policy {self.name!r} over driftline.yaml", e)) from None
        training = base.training.model_copy(update={"retrain_on_schedule": self.kind == "weekly"})
        return base.model_copy(update={"drift": drift, "training": training})

    def yaml_snippet(self) -> str:
        """The ``driftline.yaml`` lines that select this policy."""
        import yaml

        if self.kind == "never":
            return "# never retrain: pause the refresh-and-retrain schedule in prefect.yaml, and\n" + yaml.safe_dump(
                {"training": {"retrain_on_schedule": False}}, sort_keys=False
            )
        if self.kind == "weekly":
            return yaml.safe_dump({"training": {"retrain_on_schedule": True}}, sort_keys=False)
        out = yaml.safe_dump({"training": {"retrain_on_schedule": False}}, sort_keys=False)
        if self.drift:
            return out + yaml.safe_dump({"drift": dict(self.drift)}, sort_keys=False)
        return out + "# drift: the thresholds already in driftline.yaml\n"


def _value(text: str) -> Any:
    """A policy override's value: YAML scalars (0.15, 3, true), else the text itself."""
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v if isinstance(v, int | float | str | bool) else text


def parse_policy(spec: str) -> Policy:
    """``never`` · ``weekly`` · ``drift`` · ``drift:psi_warn=0.15,metric_drop_retrain=0.05``.

    Raises :class:`InputError` (one line, exit 2) for an unknown kind, an unknown drift setting
    or a value the setting refuses.
    """
    from pydantic import ValidationError

    from driftline.errors import describe_validation_error
    from driftline.settings import DriftSettings

    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in POLICY_KINDS:
        raise InputError(f"--policy {spec!r}: unknown policy {kind!r}; choose one of: {', '.join(POLICY_KINDS)}")
    if rest.strip() and kind != "drift":
        raise InputError(f"--policy {spec!r}: only drift takes settings (drift:psi_warn=0.15,...)")
    overrides: dict[str, Any] = {}
    known = list(DriftSettings.model_fields)
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(f"--policy {spec!r}: expected key=value, got {item!r}")
        if key not in DriftSettings.model_fields:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise InputError(f"--policy {spec!r}: unknown drift setting {key!r}{hint}")
        overrides[key] = _value(raw.strip())
    try:
        DriftSettings.model_validate({**DriftSettings().model_dump(), **overrides})
    except ValidationError as e:
        raise InputError(describe_validation_error(f"--policy {spec!r}", e)) from None
    name = kind if not overrides else kind + ":" + ",".join(f"{k}={v}" for k, v in overrides.items())
    return Policy(name, kind, overrides)


def parse_policies(specs: Sequence[str]) -> list[Policy]:
    """Several ``--policy`` values; the default is never, weekly and drift; duplicates are refused."""
    policies = [parse_policy(s) for s in (specs or POLICY_KINDS)]
    names = [p.name for p in policies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"--policy {dupes[0]!r} given twice")
    return policies


# -- weeks and the store view ------------------------------------------------------------------------
def run_times(start: Any, end: Any, week_start: str = "monday", hour: int = DEFAULT_RUN_HOUR) -> list[pd.Timestamp]:
    """The weekly runs from the first week start on or after ``start`` to the last on or before ``end``."""
    from driftline.splits import to_utc_naive
    from driftline.splits import week_start as floor_week

    lo, hi = to_utc_naive(start), to_utc_naive(end)
    if hi < lo:
        raise InputError(f"--to {hi:%Y-%m-%d} is before --from {lo:%Y-%m-%d}")
    first = floor_week(lo, week_start)  # type: ignore[arg-type]
    if first < lo.normalize():
        first += pd.Timedelta(weeks=1)
    out = []
    t = first
    while t <= hi:
        out.append(t + pd.Timedelta(hours=hour))
        t += pd.Timedelta(weeks=1)
    if len(out) < 2:
        raise InputError(
            f"--from {lo:%Y-%m-%d} --to {hi:%Y-%m-%d}: fewer than 2 weekly runs ({week_start}s); widen the range"
        )
    return out


def _naive(ts: Any) -> pd.Timestamp:
    from driftline.splits import to_utc_naive

    return to_utc_naive(ts)


class HistoryView:
    """A read-only, in-memory view of the store's predictions and outcomes (read once).

    It answers the two reads the pipeline makes (``read_predictions``, ``read_outcomes``) with
    the same frames the store would return; it has no write method at all.
    """

    def __init__(self, store: Any, contract: Any, start: pd.Timestamp, end: pd.Timestamp) -> None:
        from driftline.store import OUTCOME_TIME

        self.contract = contract
        self._time = {"predictions": contract.timestamp, "outcomes": OUTCOME_TIME}
        self._frames = {
            "predictions": store.read_predictions(start, end),
            "outcomes": store.read_outcomes(start, None),
        }
        c = contract
        self._labels = self._frames["outcomes"][[c.request_id, c.target.name]].drop_duplicates(
            c.request_id, keep="last"
        )

    def _read(self, table: str, start: Any, end: Any) -> pd.DataFrame:
        frame = self._frames[table]
        t = frame[self._time[table]]
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= (t >= _naive(start)).to_numpy()
        if end is not None:
            keep &= (t < _naive(end)).to_numpy()
        return frame[keep].reset_index(drop=True)

    def read_predictions(
        self, start: Any = None, end: Any = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Predictions logged in [start, end) (optionally only ``columns``)."""
        out = self._read("predictions", start, end)
        return out[list(columns)] if columns else out

    def read_outcomes(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Outcomes observed in [start, end)."""
        return self._read("outcomes", start, end)

    def labelled(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Predictions logged in [start, end) with their outcome (whenever it arrived)."""
        c = self.contract
        rows = self._read("predictions", start, end)
        return rows.merge(self._labels, on=c.request_id, how="inner", validate="one_to_one")


# -- results ----------------------------------------------------------------------------------------
@dataclass
class WeekResult:
    """One policy's run of one week, and how the model it then served scored on that week."""

    week: int
    start: str  # the served week's first day
    as_of: str
    status: str  # registered | no_retrain | blocked | skipped (never after the bootstrap)
    action: str
    decision: str | None
    trigger: str | None
    codes: list[str]
    flagged: dict[str, str]
    trained: bool
    promoted: bool
    version: str | None
    served: str | None  # the served model's lineage token (equal tokens: the same model)
    served_version: str | None
    comparison: dict[str, Any] | None
    champion_metric: float | None
    candidate_metric: float | None
    train_rows: int | None
    training_window: dict[str, Any] | None
    train_seconds: float
    step_seconds: dict[str, float]
    metric: dict[str, Any]  # estimate, low, high, n, n_positive on the week's labelled traffic
    evidence: dict[str, Any] | None = None  # the numbers the metric trigger judged


@dataclass
class PolicyResult:
    """What one policy did, week by week."""

    policy: Policy
    weeks: list[WeekResult] = field(default_factory=list)
    run_seconds: float = 0.0
    candidates: dict[int, str] = field(default_factory=dict)  # week -> token of the candidate trained then

    @property
    def retrains(self) -> int:
        """Runs after the bootstrap that trained a candidate."""
        return sum(w.trained for w in self.weeks[1:])

    @property
    def promotions(self) -> int:
        """Runs after the bootstrap whose candidate became champion."""
        return sum(w.promoted for w in self.weeks[1:])

    @property
    def train_seconds(self) -> float:
        """Seconds in backtest + training, counted as production would have spent them."""
        return float(sum(w.train_seconds for w in self.weeks))

    def series(self) -> dict[int, float | None]:
        """Week -> the primary metric of the served model."""
        return {w.week: w.metric.get("estimate") for w in self.weeks}


@dataclass
class _Track:
    """The running state of one policy: which registry version is which model."""

    tokens: dict[str, str] = field(default_factory=dict)  # registry version -> lineage token
    champion: str | None = None  # token of this run's champion ("none" before the first; None: unknown)
    datasets: str | None = None
    candidate: str | None = None


class _StepClock:
    """Seconds per step: what the step cost when it was computed (also when reused) and the wall time."""

    def __init__(self) -> None:
        self.charged: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def add(self, step: str, charged: float, wall: float) -> None:
        self.charged[step] = self.charged.get(step, 0.0) + charged
        self.wall[step] = self.wall.get(step, 0.0) + wall


def _vocab_key(vocab: dict[str, set[str]] | None) -> Any:
    return None if vocab is None else tuple(sorted((k, tuple(sorted(map(str, v)))) for k, v in vocab.items()))


# -- the replayer -------------------------------------------------------------------------------------
class Replayer:
    """Replays policies over one history; results coinciding across policies are computed once.

    ``settings`` and ``contract`` are the user's; ``store`` is only read (once, here).
    Scratch registries live under ``workdir`` (a new temporary folder unless given), removed
    by :meth:`close` unless ``keep``.
    """

    def __init__(
        self,
        settings: Any,
        contract: Any,
        store: Any,
        start: Any,
        end: Any,
        *,
        seed: int | None = None,
        resamples: int = DEFAULT_RESAMPLES,
        hour: int = DEFAULT_RUN_HOUR,
        workdir: Path | None = None,
        keep: bool = False,
        actor: str = "replay",
    ) -> None:
        from driftline.pipeline import Week

        training = settings.training.model_copy(update={"seed": settings.training.seed if seed is None else seed})
        gates = settings.gates.model_copy(update={"auto_promote": True})
        # The feedback pool is off: it writes to the store (the replay only reads it), and a pool
        # that grows with a policy's own history would make the shared candidates policy-specific.
        feedback = settings.feedback.model_copy(update={"enabled": False})
        self.settings = settings.model_copy(update={"training": training, "gates": gates, "feedback": feedback})
        self.contract = contract
        self.seed = int(training.seed)
        self.resamples = int(resamples)
        self.actor = actor
        self.times = run_times(start, end, settings.windows.week_start, hour)
        self.week_starts = [t.normalize() for t in self.times]
        weeks = [Week.of(t, settings.windows) for t in self.times]
        earliest = min([weeks[0].split.train_start, weeks[0].recent_start, *(f.train_start for f in weeks[0].folds)])
        self.view = HistoryView(store, contract, earliest, self.week_starts[-1] + pd.Timedelta(weeks=1))
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="driftline-replay-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._cache: dict[Any, tuple[Any, float]] = {}
        self._tokens: dict[Any, str] = {}  # cache key of a candidate -> its token
        self._models: dict[str, Any] = {}  # token -> fitted pipeline
        self._scored: dict[tuple[str, int], dict[str, Any]] = {}
        self._labelled: dict[int, pd.DataFrame] = {}
        self.results: dict[str, PolicyResult] = {}

    # -- scoring ----------------------------------------------------------------------------------
    def labelled_week(self, week: int) -> pd.DataFrame:
        """Week ``week``'s logged traffic with outcomes."""
        if week not in self._labelled:
            lo = self.week_starts[week]
            self._labelled[week] = self.view.labelled(lo, lo + pd.Timedelta(weeks=1))
        return self._labelled[week]

    def model(self, token: str) -> Any:
        """The fitted pipeline a lineage token names."""
        return self._models[token]

    def week_metric(self, token: str, week: int) -> dict[str, Any]:
        """The primary metric of model ``token`` on week ``week``'s labelled traffic, with its interval."""
        key = (token, week)
        if key not in self._scored:
            self._scored[key] = self._score(self._models[token], self.labelled_week(week), week)
        return self._scored[key]

    def _score(self, model: Any, frame: pd.DataFrame, week: int) -> dict[str, Any]:
        from driftline.labels import binary_target
        from driftline.metrics import bootstrap_interval
        from driftline.training import score

        metric = self.settings.gates.primary_metric
        y = binary_target(frame[self.contract.target.name], self.contract) if len(frame) else np.zeros(0)
        out: dict[str, Any] = {"estimate": None, "low": None, "high": None, "n": len(frame), "n_positive": int(y.sum())}
        if len(frame) == 0 or y.sum() == 0:
            return out
        s = score(model, frame, self.contract)
        rng = np.random.default_rng([self.seed, week, 17])
        iv = bootstrap_interval(
            metric,
            y,
            s,
            rng,
            threshold=self.settings.training.threshold,
            resamples=max(self.resamples, 1),
            confidence=self.settings.gates.confidence,
        )
        out.update(estimate=_finite(iv.estimate), low=_finite(iv.low), high=_finite(iv.high))
        return out

    # -- one policy ---------------------------------------------------------------------------------
    def _context(self, policy: Policy) -> Any:
        from driftline import pipeline
        from driftline.registry import ModelRegistry

        slug = "".join(ch if ch.isalnum() else "-" for ch in policy.name)
        home = self.workdir / f"{len(self.results):02d}-{slug}"
        s = policy.settings_for(self.settings).model_copy(
            update={
                "home": home,
                "store_url": f"sqlite:///{home / 'registry.db'}",  # the scratch alias history
                "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            }
        )
        s.ensure_home()
        return pipeline.Context(s, self.contract, self.view, ModelRegistry.from_settings(s), self.actor)

    def _key(self, step: str, week: int, track: _Track, args: tuple[Any, ...]) -> Any:
        if step == "load-window":
            return ("window", week)
        if step == "backtest":
            return ("backtest", week)
        if step == "refresh-test-set":
            return ("datasets", week, _vocab_key(args[-1]))
        if track.datasets is None:
            return None
        if step == "train-candidate":
            return ("candidate", track.datasets)
        if step in ("validate-and-skew", "gates") and track.champion is not None:
            return (step, track.datasets, track.champion)
        return None

    def _caller(self, week: int, track: _Track, clock: _StepClock) -> Callable[..., Any]:
        def call(step: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            key = self._key(step, week, track, args)
            if key is not None and key in self._cache:
                result, charged = self._cache[key]
            else:
                result = fn(*args, **kwargs)
                charged = time.perf_counter() - t
                if key is not None:
                    self._cache[key] = (result, charged)
            clock.add(step, charged, time.perf_counter() - t)
            if step == "load-champion":
                # A version of unknown lineage (None) shares nothing that depends on the champion.
                track.champion = "none" if result is None else track.tokens.get(str(result.version))
            elif step == "refresh-test-set":
                track.datasets = f"d{week}:{_vocab_key(args[-1])}"
            elif step == "train-candidate":
                token = self._tokens.setdefault(key, f"m{len(self._tokens)}")  # type: ignore[arg-type]
                self._models.setdefault(token, result.model.pipeline)
                track.candidate = token
            elif step == "register" and track.candidate is not None:
                track.tokens[str(result.version)] = track.candidate
            return result

        return call

    def run(self, policy: Policy, on_run: Callable[[int, Any], None] | None = None) -> PolicyResult:
        """Replay ``policy`` over every week; ``on_run(week, outcome)`` sees each pipeline outcome."""
        from driftline import pipeline

        if policy.name in self.results:
            return self.results[policy.name]
        ctx = self._context(policy)
        out = PolicyResult(policy)
        track = _Track()
        t_policy = time.perf_counter()
        try:
            for week, as_of in enumerate(self.times):
                track.champion = track.datasets = track.candidate = None
                clock = _StepClock()
                outcome = None
                if policy.kind != "never" or week == 0:
                    try:
                        outcome = pipeline.run_week(
                            ctx,
                            as_of,
                            "schedule",
                            call=self._caller(week, track, clock),
                            test_set_dir=self.workdir / "test_sets",
                        )
                    except DriftlineError as e:
                        where = f"replay {policy.name}, week of {self.week_starts[week]:%Y-%m-%d}"
                        raise DriftlineError(f"{where}: {e}", exit_code=e.exit_code) from None
                    if on_run is not None:
                        on_run(week, outcome)
                version = ctx.registry.alias_version("champion")
                if week == 0 and version is None:
                    why = outcome.message if outcome is not None else "no run"
                    raise DriftlineError(
                        f"replay: the first week ({self.week_starts[0]:%Y-%m-%d}) produced no model ({why}); "
                        "start later with --from"
                    )
                served = track.tokens.get(str(version)) if version is not None else None
                if track.candidate is not None:
                    out.candidates[week] = track.candidate
                out.weeks.append(self._record(week, as_of, outcome, clock, version, served))
        finally:
            out.run_seconds = time.perf_counter() - t_policy
        self.results[policy.name] = out
        return out

    def _record(
        self, week: int, as_of: pd.Timestamp, outcome: Any, clock: _StepClock, version: str | None, served: str | None
    ) -> WeekResult:
        metric = self.week_metric(served, week) if served is not None else {"estimate": None}
        primary = self.settings.gates.primary_metric
        if outcome is None:
            return WeekResult(
                week, f"{self.week_starts[week]:%Y-%m-%d}", as_of.isoformat(), "skipped", "none", None, None, [], {},
                False, False, None, served, version, None, None, None, None, None, 0.0, {}, metric,
            )  # fmt: skip
        s = outcome.summary
        drift = s.get("drift") or {}
        reg = s.get("registration") or {}
        return WeekResult(
            week=week,
            start=f"{self.week_starts[week]:%Y-%m-%d}",
            as_of=as_of.isoformat(),
            status=outcome.status,
            action=s.get("action", outcome.status),
            decision=drift.get("action"),
            trigger=drift.get("trigger"),
            codes=[str(c.get("code")) for c in drift.get("codes", [])],
            flagged={k: v.get("severity") for k, v in (drift.get("flagged") or {}).items()},
            trained="candidate" in outcome.parts,
            promoted=bool(reg.get("promoted") and reg.get("created")),
            version=reg.get("version"),
            served=served,
            served_version=version,
            comparison=(s.get("gates") or {}).get("comparison"),
            champion_metric=_finite((s.get("champion_metrics") or {}).get(primary)),
            candidate_metric=_finite((s.get("candidate_metrics") or {}).get(primary)),
            train_rows=(s.get("datasets") or {}).get("train_rows"),
            training_window=s.get("training_window"),
            train_seconds=round(sum(clock.charged.get(k, 0.0) for k in TRAINING_STEPS), 4),
            step_seconds={k: round(v, 4) for k, v in clock.wall.items()},
            metric=metric,
            evidence=_metric_evidence(outcome, primary),
        )

    def oracle(self) -> PolicyResult:
        """The model that retrains every week and serves each candidate ungated (from ``weekly``'s runs)."""
        weekly = next((r for r in self.results.values() if r.policy.kind == "weekly"), None)
        if weekly is None:
            weekly = self.run(Policy("weekly", "weekly"))
        out = PolicyResult(Policy(ORACLE, ORACLE))
        token = None
        for w in weekly.weeks:
            token = weekly.candidates.get(w.week, token)
            base = asdict(w)
            base.update(
                served=token,
                served_version=None,
                promoted=w.trained,
                train_seconds=w.train_seconds,
                metric=self.week_metric(token, w.week) if token else {"estimate": None},
            )
            out.weeks.append(WeekResult(**base))
        return out

    def close(self) -> None:
        """Remove the scratch registries (unless ``keep``)."""
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _metric_evidence(outcome: Any, metric: str) -> dict[str, Any] | None:
    """The numbers the metric trigger judged: reference and current metric, both errors, the CUSUM."""
    a = outcome.parts.get("assessment")
    if a is None or not a.performance:
        return None
    from driftline.drift.policy import metric_gap

    perf = a.performance
    gap = metric_gap(perf, metric)
    iv = perf.get("interval") or {}
    change = perf.get("change", {}).get(metric) or {}
    return {
        "reference": change.get("reference"),
        "current": change.get("current"),
        "se": iv.get("se"),
        "reference_se": iv.get("reference_se"),
        "deficit": None if gap is None else gap.deficit,
        "cusum": (a.state or {}).get("metric_cusum"),
    }


# -- the report -------------------------------------------------------------------------------------
def summarise(
    results: Sequence[PolicyResult],
    oracle: PolicyResult,
    never: PolicyResult,
    *,
    metric: str,
    min_recovery: float = DEFAULT_MIN_RECOVERY,
) -> dict[str, Any]:
    """Per policy: retrains, promotions, weekly metric, mean gap to the oracle, recovery; the recommendation."""
    o, n = oracle.series(), never.series()
    after = [w for w in sorted(o) if w > 0]
    comparable = [w for w in after if o[w] is not None and n[w] is not None]
    loss = float(sum(o[w] - n[w] for w in comparable))  # type: ignore[operator]
    rows: dict[str, dict[str, Any]] = {}
    for r in [*results, oracle]:
        p = r.series()
        weeks = [w for w in comparable if p.get(w) is not None]
        gained = float(sum(p[w] - n[w] for w in weeks))  # type: ignore[operator]
        recovery = gained / loss if loss > 0 and weeks else None
        values = [v for v in p.values() if v is not None]
        retrains = r.retrains
        rows[r.policy.name] = {
            "kind": r.policy.kind,
            "drift": dict(r.policy.drift),
            "retrains": retrains,
            "promotions": r.promotions,
            "mean_metric": float(np.mean(values)) if values else None,
            "mean_gap_to_oracle": float(np.mean([o[w] - p[w] for w in weeks])) if weeks else None,  # type: ignore[operator]
            "recovery": recovery,
            "recovery_per_retrain": recovery / retrains if recovery is not None and retrains else None,
            "train_seconds": round(r.train_seconds, 3),
            "run_seconds": round(r.run_seconds, 3),
            "weeks": [
                {
                    "week": w.week,
                    "start": w.start,
                    "metric": w.metric.get("estimate"),
                    "low": w.metric.get("low"),
                    "high": w.metric.get("high"),
                    "n": w.metric.get("n"),
                    "trained": w.trained,
                    "promoted": w.promoted,
                    "action": w.action,
                    "served": w.served,
                }
                for w in r.weeks
            ],
        }
    choice, why = recommend(rows, [r.policy.name for r in results], loss, min_recovery)
    chosen = next(r.policy for r in results if r.policy.name == choice) if choice else None
    return {
        "metric": metric,
        "weeks": [w.start for w in oracle.weeks],
        "loss_of_never": loss,
        "min_recovery": min_recovery,
        "policies": rows,
        "recommended": {"policy": choice, "why": why, "yaml": chosen.yaml_snippet() if chosen else None},
    }


def recommend(
    rows: dict[str, dict[str, Any]], names: Sequence[str], loss: float, min_recovery: float
) -> tuple[str | None, str]:
    """The policy with the best recovery per retrain among those recovering at least ``min_recovery``."""
    if not names:
        return None, "no policy replayed"
    order = {n: i for i, n in enumerate(names)}
    if loss <= 0:
        best = min(names, key=lambda n: (rows[n]["retrains"], order[n]))
        return best, "the never-retrained model lost nothing to the oracle: the fewest retrains wins"
    eligible = [n for n in names if (rows[n]["recovery"] or 0) >= min_recovery and rows[n]["retrains"] > 0]
    if eligible:
        best = max(eligible, key=lambda n: (rows[n]["recovery_per_retrain"], rows[n]["recovery"], -order[n]))
        r = rows[best]
        return best, (
            f"best recovery per retrain ({r['recovery']:.0%} of the loss in {r['retrains']} retrains) "
            f"among policies recovering ≥ {min_recovery:.0%}"
        )
    best = max(names, key=lambda n: (rows[n]["recovery"] or 0, -rows[n]["retrains"], -order[n]))
    r = rows[best]
    return best, (
        f"no policy recovered ≥ {min_recovery:.0%} of the loss; the highest recovery "
        f"({(r['recovery'] or 0):.0%} in {r['retrains']} retrains)"
    )


def render_text(report: dict[str, Any]) -> str:
    """The report as a terminal table and the recommended snippet."""

    def f(x: Any, spec: str = ".3f") -> str:
        return "-" if x is None else format(x, spec)

    m = report["metric"]
    lines = [
        f"replay of {len(report['weeks'])} weeks ({report['weeks'][0]} .. {report['weeks'][-1]}), metric {m}",
        "loss of the never-retrained model vs the oracle (sum over weeks after the bootstrap): "
        f"{report['loss_of_never']:.4f}",
        "",
        f"{'policy':<40} {'retrains':>8} {'promoted':>8} {'mean ' + m[:12]:>18} {'gap to oracle':>13} "
        f"{'recovery':>9} {'train s':>8}",
    ]
    for name, r in report["policies"].items():
        lines.append(
            f"{name:<40} {r['retrains']:>8} {r['promotions']:>8} {f(r['mean_metric']):>18} "
            f"{f(r['mean_gap_to_oracle'], '+.4f'):>13} {f(r['recovery'], '.0%'):>9} {r['train_seconds']:>8.1f}"
        )
    rec = report["recommended"]
    if rec["policy"]:
        lines += [
            "",
            f"recommended: {rec['policy']} — {rec['why']}",
            "driftline.yaml:",
            *("  " + x for x in rec["yaml"].splitlines()),
        ]
    return "\n".join(lines)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: metric over time for all policies, retrains vs recovery, the table, the snippet."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    m = report["metric"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for name, r in report["policies"].items():
        xs = [pd.Timestamp(w["start"]) for w in r["weeks"]]
        ys = [np.nan if w["metric"] is None else w["metric"] for w in r["weeks"]]
        style = {"linestyle": "--", "color": "black", "linewidth": 1} if name == ORACLE else {"marker": "."}
        (line,) = ax.plot(xs, ys, label=name, **style)
        lo = [np.nan if w["low"] is None else w["low"] for w in r["weeks"]]
        hi = [np.nan if w["high"] is None else w["high"] for w in r["weeks"]]
        if name != ORACLE:
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.08)
            promoted = [(x, y) for x, y, w in zip(xs, ys, r["weeks"], strict=True) if w["promoted"] and w["week"] > 0]
            if promoted:
                ax.scatter(*zip(*promoted, strict=True), color=line.get_color(), marker="^", s=40, zorder=3)
    ax.set_ylabel(m)
    ax.set_title(f"{m} of the served model, week by week (▲ promotion; band: interval)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    lines_png = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, r in report["policies"].items():
        y = r["recovery"] if r["recovery"] is not None else 0.0
        ax.scatter([r["retrains"]], [y], s=50, color="black" if name == ORACLE else None)
        ax.annotate(name, (r["retrains"], y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("retrains (after the bootstrap)")
    ax.set_ylabel("share of the never-retrained model's loss recovered")
    ax.set_title("cost vs performance")
    scatter_png = _png(fig)
    plt.close(fig)

    def f(x: Any, spec: str = ".3f") -> str:
        return "–" if x is None else format(x, spec)

    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{r['retrains']}</td><td>{r['promotions']}</td>"
        f"<td>{f(r['mean_metric'])}</td><td>{f(r['mean_gap_to_oracle'], '+.4f')}</td>"
        f"<td>{f(r['recovery'], '.0%')}</td><td>{r['train_seconds']:.1f}</td></tr>"
        for n, r in report["policies"].items()
    )
    rec = report["recommended"]
    snippet = (
        f"<h2>Recommended: {html.escape(rec['policy'])}</h2><p>{html.escape(rec['why'])}</p>"
        f"<pre>{html.escape(rec['yaml'])}</pre>"
        if rec["policy"]
        else ""
    )
    title = f"driftline replay {report['weeks'][0]} – {report['weeks'][-1]}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        f"<p>Metric: {html.escape(m)}. Loss of the never-retrained model against the oracle: "
        f"{report['loss_of_never']:.4f}.</p>"
        f"<img alt='metric over time' src='data:image/png;base64,{lines_png}'>"
        f"<img alt='retrains vs recovery' src='data:image/png;base64,{scatter_png}'>"
        "<table><tr><th>policy</th><th>retrains</th><th>promotions</th><th>mean metric</th>"
        f"<th>gap to oracle</th><th>recovery</th><th>train s</th></tr>{rows}</table>{snippet}</body></html>"
    )


# -- one call ---------------------------------------------------------------------------------------
def run_order(policies: Sequence[Policy]) -> list[Policy]:
    """The order to replay in: ``never`` first (the bootstrap it trains is shared), then ``weekly`` (the
    oracle's runs, whose candidates the other policies reuse), then the rest; both are added when missing."""
    todo = list(policies)
    for kind in ("weekly", "never"):
        if not any(p.kind == kind for p in todo):
            todo.append(Policy(kind, kind))
    return sorted(todo, key=lambda p: POLICY_KINDS.index(p.kind))


def report(r: Replayer, policies: Sequence[Policy], min_recovery: float = DEFAULT_MIN_RECOVERY) -> dict[str, Any]:
    """The report of ``policies`` (replaying whatever has not run yet)."""
    for p in run_order(policies):
        r.run(p)
    never = next(x for x in r.results.values() if x.policy.kind == "never")
    out = summarise(
        [r.results[p.name] for p in policies],
        r.oracle(),
        never,
        metric=r.settings.gates.primary_metric,
        min_recovery=min_recovery,
    )
    out["seed"] = r.seed
    return out


def replay(
    settings: Any,
    contract: Any,
    store: Any,
    start: Any,
    end: Any,
    policies: Sequence[Policy],
    *,
    seed: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    min_recovery: float = DEFAULT_MIN_RECOVERY,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``policies`` from ``start`` to ``end`` and return the report (see :func:`summarise`)."""
    for p in policies:
        p.settings_for(settings)  # an override the user's settings refuse fails before any work
    r = Replayer(
        settings, contract, store, start, end, seed=seed, resamples=resamples, workdir=workdir, keep=workdir is not None
    )
    try:
        for p in run_order(policies):
            t = time.perf_counter()
            r.run(p)
            if progress is not None:
                progress(f"{p.name}: {len(r.times)} weeks in {time.perf_counter() - t:.1f} s")
        return report(r, policies, min_recovery)
    finally:
        r.close()


def to_json(report: dict[str, Any]) -> str:
    """The report as strict JSON."""
    return json.dumps(report, indent=2, default=str, allow_nan=False)
