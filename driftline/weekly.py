"""The steps of the weekly refresh-and-retrain job, as plain functions.

``flows/refresh_and_retrain.py`` wires these through thin Prefect tasks; the same steps run
without Prefect (``bench/bench_flow.py`` compares the two). Each step takes what the previous
one returned and the settings, and returns a small dataclass the flow can branch on.

Order and reasons:

1. :func:`load_window` — labelled rows for the test window, the training window and the
   backtest folds (label delay honoured), plus the most recent production window.
2. :func:`build_datasets` — temporal split, then a production-mirror sample of the test
   window ("test sets age like production data"), versioned by content hash.
3. :func:`check_data` — GX suites on training, test and recent data, and the
   training–serving skew check against the champion's training sample; blocks the run
   before any training when either fails.
4. :func:`assess_drift` — the recent window against the champion's reference profile and
   the champion's metrics on the refreshed test set; the trigger policy decides.
5. :func:`train_candidate` and :func:`judge_candidate` — fit, evaluate on the same test set
   as the champion, backtest over rolling folds, and run the promotion gates.
6. :func:`register_candidate` — one MLflow run and model version with lineage tags; aliases.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import DriftlineError, RefusedError, TransientError
from driftline.settings import Settings
from driftline.values import finite as _finite

TRIGGERS = ("schedule", "drift", "performance", "manual", "bootstrap")
SCORE = "score"


# -- helpers ------------------------------------------------------------------------------
def code_version(root: Path | None = None) -> str:
    """The git commit of the running code, or the package version outside a checkout."""
    here = root or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"driftline-{version('driftline')}"


def as_timestamp(as_of: Any) -> pd.Timestamp:
    """A tz-naive UTC timestamp from a date, datetime or ISO string."""
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


# -- 0. the run's time ---------------------------------------------------------------------
@dataclass(frozen=True)
class Week:
    """The run's time, normalised once: every window a step needs, naive UTC."""

    as_of: pd.Timestamp
    split: Any  # driftline.splits.TemporalSplit
    folds: tuple[Any, ...]
    recent_start: pd.Timestamp

    @classmethod
    def of(cls, as_of: Any, windows: Any) -> Week:
        from driftline.splits import backtest_folds, temporal_split

        t = as_timestamp(as_of)
        w = windows
        longest = max(w.train_week_options)
        split = temporal_split(t, w.train_weeks, w.test_weeks, w.label_delay_days, w.week_start)
        # Folds reach back far enough for the longest candidate window; each candidate trims them.
        folds = backtest_folds(t, longest, w.test_weeks, w.label_delay_days, w.backtest_folds, w.week_start)
        return cls(t, split, tuple(folds), t - pd.Timedelta(days=w.recent_days))


# -- 1. load --------------------------------------------------------------------------------
@dataclass
class Window:
    """What the store holds for one run: labelled rows and the recent production window."""

    as_of: pd.Timestamp
    split: Any  # driftline.splits.TemporalSplit
    folds: list[Any]
    labelled: pd.DataFrame
    recent: pd.DataFrame
    label_stats: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "split": self.split.to_dict(),
            "labelled_rows": len(self.labelled),
            "recent_rows": len(self.recent),
            "labels": self.label_stats,
        }


def load_window(store: Any, contract: Contract, settings: Settings, week: Any) -> Window:
    """Read the predictions and outcomes one run needs, joining labels that have arrived.

    ``week`` is the run's :class:`Week` (an as-of time is normalised into one).
    """
    from driftline.labels import join_labels_with_stats

    if not isinstance(week, Week):
        week = Week.of(week, settings.windows)
    w = settings.windows
    t, split, folds = week.as_of, week.split, list(week.folds)
    earliest = min([split.train_start, *(f.train_start for f in folds)])
    predictions = store.read_predictions(min(earliest, week.recent_start), t)
    outcomes = store.read_outcomes(earliest, t + pd.Timedelta(microseconds=1))
    labelled, stats = join_labels_with_stats(
        predictions[predictions[contract.timestamp] < split.test_end], outcomes, contract, t, w.label_delay_days
    )
    recent = predictions[predictions[contract.timestamp] >= week.recent_start].reset_index(drop=True)
    return Window(t, split, folds, labelled, recent, stats.to_dict())


# -- 2. datasets ----------------------------------------------------------------------------
@dataclass
class Datasets:
    """The training frame and the refreshed test set, with their content hashes."""

    train: pd.DataFrame
    test: pd.DataFrame
    test_manifest: dict[str, Any]
    test_hash: str
    train_hash: str
    test_path: Path | str | None = None  # a local path or an s3:// URL
    test_weights: np.ndarray | None = None  # inverse-inclusion weights, aligned with ``test`` rows
    tail_mask: np.ndarray | None = None  # which test rows are long-tail picks (their own slice)
    test_window: pd.DataFrame | None = None  # every labelled row of the test window (out of sample)

    def weights(self) -> np.ndarray:
        return np.ones(len(self.test)) if self.test_weights is None else self.test_weights

    def tail(self) -> np.ndarray:
        return np.zeros(len(self.test), dtype=bool) if self.tail_mask is None else self.tail_mask

    def summary(self) -> dict[str, Any]:
        return {
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "train_hash": self.train_hash,
            "test_hash": self.test_hash,
            "test_path": str(self.test_path) if self.test_path else None,
        }


def build_datasets(
    window: Window,
    contract: Contract,
    settings: Settings,
    rng: np.random.Generator,
    out_dir: Path | str | None = None,
    known_vocab: dict[str, set[str]] | None = None,
) -> Datasets:
    """Temporal split and a refreshed, long-tail-aware test sample, written as Parquet."""
    from driftline.sampling import content_hash, refresh_test_set
    from driftline.splits import apply_split

    train, pool = apply_split(window.labelled, window.split, contract)
    if len(pool) == 0:
        raise DriftlineError(
            f"no labelled rows in the test window {window.split.test_start:%Y-%m-%d}..{window.split.test_end:%Y-%m-%d}"
            " (has traffic been ingested, and have outcomes arrived?)"
        )
    s = settings.sampling
    sample = refresh_test_set(
        pool,
        contract,
        s.test_size,
        rng,
        tail_cap=s.tail_cap,
        rare_share=s.rare_share,
        extreme_quantile=s.extreme_quantile,
        known_vocab=known_vocab,
    )
    tail = sample.frame[contract.request_id].isin(set(sample.tail_request_ids)).to_numpy()
    path = None
    if out_dir is not None:  # a folder or an s3:// URL (driftline.io writes either)
        from driftline import io

        path = io.join(out_dir, f"test-{sample.content_hash[:16]}.parquet")
        io.write_parquet(sample.frame.assign(driftline_weight=sample.weights, driftline_tail=tail), path)
    return Datasets(
        train=train,
        test=sample.frame,
        test_manifest=sample.manifest,
        test_hash=sample.content_hash,
        train_hash=content_hash(train, sort_by=contract.request_id) if len(train) else "empty",
        test_path=path,
        test_weights=sample.weights,
        tail_mask=tail,
        test_window=pool,
    )


# -- champion -------------------------------------------------------------------------------
@dataclass
class Champion:
    """The serving model and what it was registered with."""

    version: str
    pipeline: Any
    profile: Any  # driftline.drift.Profile | None
    training_sample: pd.DataFrame | None
    test_metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


def load_champion(registry: Any, contract: Contract) -> Champion | None:
    """The champion's model, reference profile and training sample, or None before the first.

    Only a version driftline registered loads (its files checked against the recorded hash); a
    foreign or tampered champion, or one whose reference artifacts cannot be read, blocks the
    run with one line instead of being measured against nothing.
    """
    from driftline.drift import Profile

    info = registry.champion()
    if info is None:
        return None
    pipeline = registry.load(version=info.version)
    try:
        with tempfile.TemporaryDirectory(prefix="driftline-artifact-") as scratch:  # nothing left in TMPDIR
            profile = Profile.load(registry.download_artifact(info.version, "reference_profile.json", Path(scratch)))
            sample = pd.read_parquet(registry.download_artifact(info.version, "training_sample.parquet", Path(scratch)))
    except TransientError:
        raise  # the tracking server is down: worth a retry, not a verdict on the champion
    except (OSError, DriftlineError) as e:
        raise DriftlineError(
            f"champion version {info.version}: cannot read its reference artifacts ({e}); "
            "drift and skew cannot be measured, so the run stops"
        ) from None
    except (ValueError, KeyError) as e:
        raise DriftlineError(f"champion version {info.version}: unreadable reference artifacts ({e})") from None
    metrics = {k.removeprefix("test."): v for k, v in (info.metrics or {}).items() if k.startswith("test.")}
    return Champion(info.version, pipeline, profile, sample, metrics, dict(info.tags))


def profile_for(champion: Champion | None, contract: Contract) -> Any:
    """The champion's reference profile when it was fitted for this contract, else None.

    After a contract change the old profile's bins and vocabularies no longer describe the
    columns, so drift and distribution checks are skipped (and say so) until the next version.
    """
    if champion is None or champion.profile is None:
        return None
    try:
        champion.profile.check_contract(contract)
    except DriftlineError:
        return None
    return champion.profile


# -- 3. validation and skew ---------------------------------------------------------------
@dataclass
class DataCheck:
    """Validation results per dataset, the skew report and the gate's verdict."""

    validation: dict[str, dict[str, Any]]
    skew: dict[str, Any] | None
    skew_markdown: str
    blocked: bool
    reasons: list[str]
    skew_reasons: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "validation": {k: v.get("success") for k, v in self.validation.items()},
            "skew_findings": len((self.skew or {}).get("findings", [])),
            "blocked": self.blocked,
            "reasons": self.reasons,
        }


def check_data(
    datasets: Datasets,
    recent: pd.DataFrame,
    contract: Contract,
    champion: Champion | None,
    docs_dir: Path | None = None,
    week: Any = None,
    model_name: str | None = None,
) -> DataCheck:
    """GX suites on train/test/recent, skew of recent serving data against the champion's training data.

    With ``docs_dir`` and the run's ``week``, each suite's Data Docs page is written there
    (self-contained, one run per week named by the model and the test window's start; see
    ``driftline.validation.docs``).
    """
    from driftline.validation import promotion_gate, skew_check, validate_frame
    from driftline.validation.docs import run_name

    profile = profile_for(champion, contract)
    model = model_name or contract.name
    results: dict[str, Any] = {}
    for name, frame in (("train", datasets.train), ("test", datasets.test), ("recent", recent)):
        if len(frame) == 0:
            continue
        docs = {}
        if docs_dir is not None and week is not None:
            start = f"{week.split.test_start:%Y-%m-%d}"
            docs = {"docs_dir": docs_dir, "asset_name": f"{model} · {name} data · week {start}",
                    "run_name": run_name(model, start)}  # fmt: skip
        results[name] = validate_frame(frame, contract, profile=profile if name == "recent" else None, **docs)
    skew = None
    if champion is not None and champion.training_sample is not None and len(recent):
        skew = skew_check(champion.training_sample, recent, contract)
    reasons: list[str] = []
    blocked = False
    skew_reasons: list[str] = []
    for name, result in results.items():
        # Distribution checks inform; moved distributions are for the drift step to act on.
        gate = promotion_gate(result, None, contract, warn_levels=("distribution",))
        if gate.blocked:
            blocked = True
            reasons += [f"{name} data: {r}" for r in gate.reasons]
    if skew is not None:
        gate = promotion_gate(None, skew, contract)
        if gate.blocked:
            blocked = True
            skew_reasons = list(gate.reasons)
            reasons += [f"skew: {r}" for r in gate.reasons]
    return DataCheck(
        validation={k: v.to_dict() for k, v in results.items()},
        skew=skew.to_dict() if skew is not None else None,
        skew_markdown=skew.to_markdown() if skew is not None else "",
        blocked=blocked,
        reasons=reasons,
        skew_reasons=skew_reasons,
    )


# -- 4. drift -------------------------------------------------------------------------------
@dataclass
class DriftAssessment:
    """Drift of the recent window, the champion on the refreshed test set, and the decision."""

    action: str  # none | investigate | retrain
    trigger: str | None  # why a retrain happens, one of TRIGGERS
    reasons: list[str]
    report: Any = None  # driftline.drift.DriftReport
    champion_metrics: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    champion_scores: np.ndarray | None = None  # on the refreshed test set, for the paired comparison
    codes: list[dict[str, Any]] = field(default_factory=list)  # structured reasons (drift.policy.Reason)
    state: dict[str, float] = field(default_factory=dict)  # carried to the next week (the metric CUSUM)

    def summary(self) -> dict[str, Any]:
        flagged = {}
        if self.report is not None:
            flagged = {
                f.name: {"psi": round(f.psi, 4), "severity": f.severity}
                for f in self.report.by_severity()
                if f.severity in ("warn", "alert")
            }
        return {
            "action": self.action,
            "trigger": self.trigger,
            "reasons": self.reasons,
            "codes": self.codes,
            "state": self.state,
            "flagged": flagged,
        }


def assess_drift(
    recent: pd.DataFrame,
    datasets: Datasets,
    contract: Contract,
    settings: Settings,
    champion: Champion | None,
    trigger: str = "schedule",
    force_retrain: bool = False,
    alerted_features: list[str] | None = None,
    prior: Sequence[Any] = (),
) -> DriftAssessment:
    """Decide ``none | investigate | retrain`` and, for a retrain, which trigger caused it.

    ``prior`` are the earlier weeks' decisions, newest first (:meth:`DecisionLog.before`): when
    this week says *investigate* for the champion that already had ``investigate_escalate_weeks
    - 1`` such weeks in a row, the concern has persisted and the policy retrains — once per
    episode, since that retrain week breaks the run. The metric CUSUM continues from last
    week's value (:func:`cusum_carried`), and a champion that a triggered retrain just promoted
    is re-checked while the new regime settles (:func:`settle`).
    """
    from driftline.drift import compare, decide, performance_drift
    from driftline.drift.policy import Decision, Reason, performance_decision
    from driftline.labels import binary_target
    from driftline.training import score

    if champion is None:
        first = Reason("no_champion", "retrain", "no champion yet: training the first version")
        return DriftAssessment("retrain", "bootstrap", [first.text], codes=[first.to_dict()])
    y = binary_target(datasets.test[contract.target.name], contract)
    threshold = settings.training.threshold
    w = datasets.weights()
    scores = score(champion.pipeline, datasets.test, contract)
    reference = {k: v for k, v in champion.test_metrics.items()}
    carried = cusum_carried(prior, champion.version)
    perf = None
    if reference:
        perf = performance_drift(reference, y, scores, threshold, w)
        reference_se = reference.get(f"{settings.gates.primary_metric}_se")
        perf.update(_metric_evidence(y, scores, w, datasets, settings, reference_se))
    champion_metrics = evaluate(y, scores, w, datasets.tail(), threshold)
    report = None
    profile = profile_for(champion, contract)
    if profile is not None and len(recent):
        frame = recent.copy()
        frame[SCORE] = score(champion.pipeline, recent, contract)
        report = compare(profile, frame, settings.drift, contract)
        decision = decide(report, settings.drift, perf, settings.gates.primary_metric, carried)
    else:
        why = "no recent traffic" if len(recent) == 0 else "the champion's reference profile does not fit this contract"
        level, metric_reasons, state = performance_decision(
            perf, settings.drift, settings.gates.primary_metric, carried
        )
        decision = Decision.of(
            level, [*metric_reasons, Reason("drift_not_measured", "none", f"{why}: drift not measured")], state
        )
    codes = list(decision.codes)
    action, cause = decision.action, decision.cause
    action, cause, codes = escalate(
        action, cause, codes, prior, champion.version, settings.drift.investigate_escalate_weeks
    )
    action, cause, codes = settle(action, cause, codes, prior, champion, settings.drift.settle_weeks)
    if trigger == "drift":
        # The drift monitor's policy already decided; this run retrains on its alert and says so.
        alerted = f" (alerted features: {', '.join(alerted_features)})" if alerted_features else ""
        codes.insert(0, Reason("drift_alert", "retrain", f"run started by a drift alert{alerted}"))
        action, cause = "retrain", "drift"
    elif force_retrain and action != "retrain":
        codes.insert(0, Reason("forced", "retrain", "forced retrain"))
        action, cause = "retrain", "manual"
    elif settings.training.retrain_on_schedule and trigger == "schedule" and action != "retrain":
        codes.insert(0, Reason("scheduled", "retrain", "retrain on every scheduled run"))
        action, cause = "retrain", "schedule"
    return DriftAssessment(
        action,
        cause,
        [r.text for r in codes],
        report,
        champion_metrics,
        perf,
        scores,
        [r.to_dict() for r in codes],
        dict(decision.state),
    )


def cusum_carried(prior: Sequence[Any], champion_version: str) -> float:
    """Last week's metric CUSUM for this champion: 0 for a new champion and after a retrain week.

    A retrain week answered the alarm (its candidate was judged on the same rows); if the
    champion is still serving, the evidence against it starts over. A week without a value
    (metric not judged, or an older log row) carries 0.
    """
    from driftline.drift.policy import CUSUM

    if not prior:
        return 0.0
    last = prior[0]
    if last.champion_version != champion_version or last.action == "retrain":
        return 0.0
    value = (getattr(last, "state", None) or {}).get(CUSUM)
    return float(value) if value is not None and math.isfinite(float(value)) else 0.0


_NOT_TRIGGERED = frozenset({"forced", "scheduled", "no_champion"})
"""Codes of retrains the policy did not ask for: a promotion after them starts no settle re-check."""


def settle(
    action: str, cause: str | None, codes: list[Any], prior: Sequence[Any], champion: Champion, need: int
) -> tuple[str, str | None, list[Any]]:
    """Re-check a champion that a triggered retrain just promoted, while the new regime settles.

    A retrain the policy asked for (a drift or metric reason) that was promoted means the world
    moved; that candidate trained on a window straddling the move. Each following week the
    window holds more of the new world, so the policy retrains again (``settle_recheck``) as
    long as the previous retrain was promoted, at most ``need`` weeks after the one that started
    the episode (a triggered retrain promoted during the run still counts as one of them); the
    first candidate that does not beat the champion on the paired test ends it (the regime has
    settled).
    """
    from driftline.drift.policy import DRIFT_CODES, Reason

    if action == "retrain" or not need or not prior:
        return action, cause, codes
    last = prior[0]
    # The champion must be the one last week's run registered against its champion (not a rollback).
    if last.action != "retrain" or champion.tags.get("parent_version") != (last.champion_version or ""):
        return action, cause, codes
    # The run of consecutive retrain weeks, newest first, each of which replaced its champion.
    links, current = [], champion.version
    for d in prior:
        if d.action != "retrain" or d.champion_version == current:
            break
        links.append(d)
        current = d.champion_version
    origin = links[-1] if links else None  # the retrain that started the episode
    if origin is None or "settle_recheck" in origin.codes or _NOT_TRIGGERED & set(origin.codes):
        return action, cause, codes
    done = len(links) - 1  # promoted retrains since the one that started the episode
    if done >= need:
        return action, cause, codes
    text = (
        f"champion {champion.version} was promoted by a triggered retrain last week; re-check {done + 1} "
        f"of at most {need} while the new regime settles (ends at the first candidate that does not beat it)"
    )
    first = Reason("settle_recheck", "retrain", text, None, float(done + 1), float(need))
    moved = bool(DRIFT_CODES & set(origin.codes))
    return "retrain", "drift" if moved else "performance", [first, *codes]


def escalate(
    action: str, cause: str | None, codes: list[Any], prior: Sequence[Any], champion_version: str, need: int
) -> tuple[str, str | None, list[Any]]:
    """'investigate' that persisted ``need`` weeks for one champion becomes a retrain (once per episode)."""
    from driftline.drift.policy import Reason

    streak = _investigate_streak(prior, champion_version)
    if action != "investigate" or not need or streak + 1 < need:
        return action, cause, codes
    moved = any(r.code.startswith(("feature_", "score_")) for r in codes)
    text = f"'investigate' for {streak + 1} weeks in a row with champion {champion_version} (retrain at {need})"
    first = Reason("investigate_persisted", "retrain", text, None, float(streak + 1), float(need))
    return "retrain", "drift" if moved else "performance", [first, *codes]


def _investigate_streak(prior: Sequence[Any], champion_version: str) -> int:
    """Weeks in a row, just before this one, that said 'investigate' for this champion."""
    n = 0
    for d in prior:
        if d.champion_version != champion_version or d.action != "investigate":
            break
        n += 1
    return n


def prior_decisions(registry: Any, model_name: str, week: Any) -> list[Any]:
    """The earlier weeks' decisions of this model, newest first (the trigger policy's memory)."""
    from driftline.registry.history import DecisionLog

    return DecisionLog(registry.store).before(model_name, week.split.test_start.isoformat())


def record_decision(
    registry: Any,
    model_name: str,
    week: Any,
    champion: Champion | None,
    assessment: DriftAssessment,
    metric: str | None = None,
) -> None:
    """Keep this week's decision (a rerun of the week replaces it), with its figures for the trend."""
    from driftline import story
    from driftline.registry.history import DecisionLog

    DecisionLog(registry.store).record(
        model_name,
        week.split.test_start.isoformat(),
        champion.version if champion else None,
        assessment.action,
        [str(c.get("code")) for c in assessment.codes],
        assessment.state,
        figures=story.week_figures(assessment, metric) if metric else None,
    )


def calibration_in_the_large(y: np.ndarray, scores: np.ndarray, w: np.ndarray | None = None) -> dict[str, Any]:
    """The labelled positive rate against the model's mean score (weighted), and the gap in standard errors.

    Were the model calibrated, each label would be a Bernoulli(score) draw, so the weighted gap
    ``Σw(y - s) / Σw`` has standard error ``sqrt(Σw² s(1 - s)) / Σw``; ``z`` is the gap in
    those units. A base-rate change (a prior shift) shows here even when the ranking metric
    does not move, because average precision rises with the share of positives.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    total = float(w.sum())
    if len(y) == 0 or total <= 0:
        return {"observed": None, "predicted": None, "ratio": None, "z": None}
    observed, predicted = float(w @ y) / total, float(w @ s) / total
    se = math.sqrt(float((w**2) @ (s * (1 - s)))) / total
    return {
        "observed": observed,
        "predicted": predicted,
        "ratio": observed / predicted if predicted > 0 else None,
        "z": (observed - predicted) / se if se > 0 else None,
    }


def _metric_evidence(
    y: np.ndarray,
    scores: np.ndarray,
    w: np.ndarray,
    datasets: Datasets,
    settings: Settings,
    reference_se: float | None = None,
) -> dict[str, Any]:
    """How much the metric trigger may trust this test set: labelled rows, positives, an interval."""
    from driftline.metrics import bootstrap_interval

    d, g = settings.drift, settings.gates
    n, positives = len(y), int(np.sum(y))
    sufficient = n >= d.min_labelled_rows and positives >= d.min_labelled_positives
    interval = bootstrap_interval(
        g.primary_metric,
        y,
        scores,
        np.random.default_rng(data_seed(settings.training.seed, datasets.test_hash, "champion")),
        threshold=settings.training.threshold,
        sample_weight=w,
        resamples=g.bootstrap_resamples,
        confidence=2 * d.metric_drop_confidence - 1,  # its upper end is the one-sided bound
    )
    # The reference is a measurement too: the drop must exceed both uncertainties together.
    from statistics import NormalDist

    z = NormalDist().inv_cdf(d.metric_drop_confidence)
    se_current = (interval.high - interval.estimate) / z if math.isfinite(interval.high) else None
    se_reference = _finite(reference_se) if reference_se is not None else se_current
    margin = None
    if se_current is not None and se_reference is not None:
        margin = z * math.sqrt(se_current**2 + se_reference**2)
    return {
        "labelled": {
            "n": n,
            "positives": positives,
            "min_rows": d.min_labelled_rows,
            "min_positives": d.min_labelled_positives,
            "sufficient": sufficient,
        },
        "calibration": calibration_in_the_large(y, scores, w),
        "interval": {
            "metric": g.primary_metric,
            **interval.to_dict(),
            "upper_confidence": d.metric_drop_confidence,
            "se": se_current,
            "reference_se": se_reference,
            "significance_margin": margin,
        },
    }


def data_seed(seed: int, digest: str, purpose: str) -> list[int]:
    """A seed from the configured seed, a data hash and what it is for: same data, same draws."""
    tag = int(hashlib.sha256(f"{digest}:{purpose}".encode()).hexdigest()[:12], 16)
    return [int(seed), tag]


def evaluate(
    y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None, tail: np.ndarray | None, threshold: float
) -> dict[str, Any]:
    """Headline metrics weighted to estimate production, and the long tail as its own slice."""
    from driftline.metrics import classification_metrics

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: (_finite(v) if isinstance(v, float) else v) for k, v in d.items()}

    out = clean(classification_metrics(y, scores, threshold, weights))
    if tail is not None and tail.any():
        out["tail"] = clean(classification_metrics(y[tail], scores[tail], threshold))
    return out


# -- 4b. feedback ----------------------------------------------------------------------------
def deployed_scores(frame: pd.DataFrame, champion: Champion | None, contract: Contract) -> tuple[np.ndarray, dict]:
    """The deployed model's score of each row: the logged one where the log has it, else the champion's."""
    from driftline.training import score

    out = np.full(len(frame), np.nan)
    if SCORE in frame.columns:
        out = pd.to_numeric(frame[SCORE], errors="coerce").to_numpy(dtype=float, na_value=np.nan).copy()
    missing = np.isnan(out)
    rescored = 0
    if missing.any() and champion is not None:
        out[missing] = score(champion.pipeline, frame[missing], contract)
        rescored = int(missing.sum())
    return out, {"logged": int((~missing).sum()), "rescored": rescored}


def shadow_disagreements(
    store: Any, model_name: str, champion: Champion | None, week: Any, threshold: float, contract: Contract
) -> pd.DataFrame:
    """Requests the champion and another version (shadow or canary) classed differently this week."""
    from driftline.store import from_micros, to_micros

    cols = [contract.request_id, contract.entity_id, contract.timestamp, "champion_score", "challenger_score"]
    if champion is None:
        return pd.DataFrame(columns=cols)
    since, until = (int(v) for v in to_micros(pd.Series([week.recent_start, week.as_of])))
    rows = store.read_rollout_scores(model_name, since, until)
    rows = rows[rows["error"].isna() & rows["score"].notna()]
    champ = rows[rows["model_version"] == champion.version].drop_duplicates("request_id")
    other = rows[rows["model_version"] != champion.version].drop_duplicates("request_id")
    pair = champ.merge(other, on="request_id", suffixes=("_c", "_o"))
    pair = pair[(pair["score_c"] >= threshold) != (pair["score_o"] >= threshold)]
    return pd.DataFrame(
        {
            contract.request_id: pair["request_id"].astype(str).to_numpy(),
            contract.entity_id: pair["entity_id_c"].astype(str).to_numpy(),
            contract.timestamp: from_micros(pair["served_us_c"]).to_numpy(),
            "champion_score": pair["score_c"].astype(float).to_numpy(),
            "challenger_score": pair["score_o"].astype(float).to_numpy(),
        },
        columns=cols,
    )


def collect_feedback(
    store: Any, window: Window, champion: Champion | None, contract: Contract, settings: Settings, week: Any
) -> Any:
    """Errors of the deployed model among the labelled rows into the feedback pool; hard cases to review.

    Runs after the data check passed: rows a skew explains (a renamed category) are the serving
    path's fault, not the model's, and must not become training cases.
    """
    from driftline.feedback import Collected, FeedbackStore, collect

    if not settings.feedback.enabled or champion is None:
        return Collected(len(window.labelled), scored_from={"skipped": 1})
    labelled_scores, a = deployed_scores(window.labelled, champion, contract)
    recent_scores, b = deployed_scores(window.recent, champion, contract)
    return collect(
        FeedbackStore(store),
        window.labelled,
        labelled_scores,
        window.recent,
        recent_scores,
        settings,
        model_version=champion.version,
        vocab=known_vocabulary(champion, contract),
        disagreements=shadow_disagreements(
            store, settings.model_name, champion, week, settings.training.threshold, contract
        ),
        scored_from={k: a[k] + b[k] for k in a},
    )


def feedback_training(
    store: Any, datasets: Datasets, window: Window, contract: Contract, settings: Settings, backtest: dict | None
) -> Any:
    """The chosen window's training rows with the feedback pool's rows flagged or added, under the cap.

    None when ``feedback.enabled`` is off (the store is then not touched).
    """
    from driftline.feedback import FeedbackStore, training_rows

    if not settings.feedback.enabled:
        return None

    base = training_frame(datasets, window, contract, (backtest or {}).get("chosen_train_weeks"))
    rng = np.random.default_rng(data_seed(settings.training.seed, datasets.train_hash, "feedback"))
    return training_rows(FeedbackStore(store), base, window.split, settings, rng)


# -- 5. train and judge -----------------------------------------------------------------------
@dataclass
class Candidate:
    """A trained pipeline, its metrics and scores on the refreshed test set, its reference profile."""

    model: Any  # driftline.training.TrainedModel
    metrics: dict[str, Any]
    profile: Any  # driftline.drift.Profile
    test_scores: np.ndarray
    training_window: dict[str, Any] = field(default_factory=dict)  # the window chosen by the backtest


def train_candidate(
    datasets: Datasets,
    contract: Contract,
    settings: Settings,
    window: Window | None = None,
    backtest: dict[str, Any] | None = None,
    feedback: Any = None,
) -> Candidate:
    """Fit on the training window, score the refreshed test set, fit the reference profile.

    The reference profile (what drift is later measured against) is fitted on the test window —
    every labelled row of the most recent whole week, which training never saw — so the score's
    reference is out of sample and the inputs' reference is the newest world the model knows.
    When that week holds fewer than ``drift.reference_min_rows`` rows, the most recent training
    weeks are added (their scores are in sample; the profile records how many rows it has).
    The training window is the backtest's ``chosen_train_weeks`` (see :func:`run_backtest`);
    ``feedback`` (a :class:`driftline.feedback.FeedbackSet` of that window) adds the pool's rows.
    """
    from driftline.drift import fit_profile
    from driftline.labels import binary_target
    from driftline.training import score, train

    weeks = (backtest or {}).get("chosen_train_weeks")
    frame = training_frame(datasets, window, contract, weeks)
    if len(frame) < settings.training.min_train_rows:
        raise DriftlineError(
            f"only {len(frame)} labelled training rows (need ≥ {settings.training.min_train_rows}); "
            "ingest more weeks of traffic and outcomes"
        )
    if feedback is not None:
        frame = feedback.frame
    model = train(frame, contract, settings.training)
    y = binary_target(datasets.test[contract.target.name], contract)
    scores = score(model.pipeline, datasets.test, contract)
    metrics = evaluate(y, scores, datasets.weights(), datasets.tail(), settings.training.threshold)
    metrics[f"{settings.gates.primary_metric}_se"] = _metric_se(y, scores, datasets, settings)
    reference = reference_rows(datasets, contract, settings.drift.reference_min_rows)
    reference[SCORE] = score(model.pipeline, reference, contract)
    profile = fit_profile(reference, contract, settings.drift, score_column=SCORE)
    chosen = {"train_weeks": weeks or settings.windows.train_weeks, "rows": len(frame)}
    if feedback is not None:
        chosen["feedback"] = feedback.summary
    return Candidate(model, metrics, profile, scores, chosen)


def _metric_se(y: np.ndarray, scores: np.ndarray, datasets: Datasets, settings: Settings) -> float | None:
    """Bootstrap standard error of the primary metric on the test set (kept as the later reference's)."""
    from driftline.metrics import bootstrap_interval

    g = settings.gates
    iv = bootstrap_interval(
        g.primary_metric,
        y,
        scores,
        np.random.default_rng(data_seed(settings.training.seed, datasets.test_hash, "candidate-se")),
        threshold=settings.training.threshold,
        sample_weight=datasets.weights(),
        resamples=g.bootstrap_resamples,
        confidence=0.6826894921370859,  # ±1 standard error of a normal
    )
    return _finite((iv.high - iv.low) / 2)


def reference_rows(datasets: Datasets, contract: Contract, min_rows: int) -> pd.DataFrame:
    """The test window's rows, topped up with the newest training rows up to ``min_rows``."""
    window = datasets.test_window if datasets.test_window is not None else datasets.test
    if len(window) >= min_rows or len(datasets.train) == 0:
        return window.copy()
    newest = datasets.train.sort_values(contract.timestamp, kind="stable").tail(min_rows - len(window))
    return pd.concat([newest, window], ignore_index=True)


def run_backtest(window: Window, contract: Contract, settings: Settings) -> dict[str, Any] | None:
    """Rolling-origin backtest of each candidate training window over the same recent folds.

    Every option of ``windows.train_week_options`` (``train_weeks`` first) is trained and scored
    on the last ``backtest_folds`` folds — the same test weeks for all, so the comparison is on
    recent data; the option with the best mean primary metric is ``chosen`` (``train_weeks`` on
    a tie or when no option can be evaluated). The configured window's summary stays at the top
    level (``mean``, ``std``, ``folds``); ``windows`` holds every option's.
    """
    from driftline.metrics import backtest

    if not window.folds:
        return None
    w = settings.windows
    results: dict[int, dict[str, Any]] = {}
    for weeks in w.train_week_options:
        folds = [replace(f, train_start=f.test_start - pd.Timedelta(weeks=weeks)) for f in window.folds]
        results[weeks] = backtest(window.labelled, contract, folds, settings.training, settings.gates.primary_metric)
    return choose_window(results, w.train_weeks)


def choose_window(results: dict[int, dict[str, Any]], default_weeks: int) -> dict[str, Any]:
    """The backtest result of ``default_weeks``, every option's summary, and the best mean's window."""
    chosen = default_weeks
    best = _finite(results[chosen].get("mean"))
    for weeks, r in results.items():
        mean = _finite(r.get("mean"))
        if mean is not None and (best is None or mean > best):
            chosen, best = weeks, mean
    out = dict(results[default_weeks])
    out["windows"] = {
        str(weeks): {k: r.get(k) for k in ("mean", "std", "n_folds_used")} for weeks, r in results.items()
    }
    out["chosen_train_weeks"] = chosen
    return out


def training_frame(datasets: Datasets, window: Window | None, contract: Contract, weeks: int | None) -> pd.DataFrame:
    """The training rows for ``weeks`` whole weeks before the test window (the split's own by default)."""
    from driftline.splits import apply_split

    if window is None or weeks is None or weeks == (window.split.test_start - window.split.train_start).days // 7:
        return datasets.train
    split = replace(window.split, train_start=window.split.test_start - pd.Timedelta(weeks=weeks))
    return apply_split(window.labelled, split, contract)[0]


def edge_suite(window: Window, champion: Champion | None, contract: Contract, settings: Settings) -> Any:
    """This week's edge-case suite, mined from the champion's labelled log rows; stored by its digest.

    Mined from the ``edge_cases.mine_weeks`` weeks before the test window, so the slices are
    chosen on other rows than the ones the gate judges (choosing and judging on the same rows
    would favour any candidate: the champion's worst slices regress toward the mean). ``None``
    before the first champion or when the suite is switched off.
    """
    from driftline.edgecases import build_suite
    from driftline.labels import binary_target
    from driftline.training import score

    e = settings.edge_cases
    if not e.enabled or champion is None:
        return None
    ts = window.labelled[contract.timestamp]
    start = window.split.test_start
    rows = window.labelled[(ts >= start - pd.Timedelta(weeks=e.mine_weeks)) & (ts < start)].reset_index(drop=True)
    if len(rows) < e.min_slice_rows:
        return None
    y = binary_target(rows[contract.target.name], contract)
    suite = build_suite(rows, y, score(champion.pipeline, rows, contract), contract, settings,
                        known_vocabulary(champion, contract))  # fmt: skip
    from driftline import io

    path = settings.output_location("edge_cases", f"{settings.model_name}-{start:%Y-%m-%d}-{suite.digest}.json")
    mined = f"{start - pd.Timedelta(weeks=e.mine_weeks):%Y-%m-%d}/{start:%Y-%m-%d}"
    suite.built_from.update(path=path, mined_from=mined)
    if not io.exists(path):  # content-addressed: the same suite is written once
        io.write_text(path, json.dumps(suite.to_dict(), indent=1, sort_keys=True, default=str))
    return suite


def edge_check(
    suite: Any,
    candidate: Candidate,
    champion: Champion | None,
    datasets: Datasets,
    contract: Contract,
    settings: Settings,
) -> Any:
    """The suite and the perturbation test on the test window's rows, for candidate and champion."""
    from driftline.edgecases import check
    from driftline.labels import binary_target
    from driftline.training import score

    if suite is None or champion is None:
        return None
    rows = datasets.test_window if datasets.test_window is not None else datasets.test
    return check(
        suite,
        rows.reset_index(drop=True),
        binary_target(rows[contract.target.name], contract),
        lambda f: score(candidate.model.pipeline, f, contract),
        lambda f: score(champion.pipeline, f, contract),
        contract,
        settings,
        np.random.default_rng(data_seed(settings.training.seed, datasets.test_hash, "edge")),
    )


def judge_candidate(
    candidate: Candidate,
    assessment: DriftAssessment,
    datasets: Datasets,
    contract: Contract,
    settings: Settings,
    edge: Any = None,
) -> Any:
    """The promotion gates (driftline.gates): a paired bootstrap comparison on the same test rows,
    and the edge-case gates when ``edge`` (a :func:`edge_check` result) is given."""
    from driftline import edgecases
    from driftline.gates import evaluate_gates
    from driftline.labels import binary_target
    from driftline.metrics import paired_difference

    comparison = None
    if assessment.champion_scores is not None:
        g = settings.gates
        comparison = paired_difference(
            g.primary_metric,
            binary_target(datasets.test[contract.target.name], contract),
            candidate.test_scores,
            assessment.champion_scores,
            np.random.default_rng(data_seed(settings.training.seed, datasets.test_hash, "paired")),
            threshold=settings.training.threshold,
            sample_weight=datasets.weights(),
            resamples=g.bootstrap_resamples,
            confidence=g.confidence,
        )
    details = {"edge_cases": edge.to_dict()} if edge is not None else {}
    return evaluate_gates(
        candidate.metrics,
        assessment.champion_metrics,
        comparison,
        settings.gates,
        edgecases.gates(edge, settings),
        details,
    )


# -- 6. register ------------------------------------------------------------------------------
def idempotency_key(split: Any, datasets: Datasets, code: str, contract: Contract) -> str:
    """The run's windows + data hashes + code version + contract: a rerun maps to the same key.

    Keyed on the split (whole weeks) rather than the exact ``as_of``, and not on the trigger,
    so a rerun later the same week, one started without ``--as-of`` or one started by a drift
    alert after the scheduled run finds the version the first run registered.
    """
    raw = json.dumps(
        [split.to_dict(), datasets.train_hash, datasets.test_hash, code, contract.fingerprint()], sort_keys=True
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def sample_seed(seed: int, split: Any) -> list[int]:
    """The test-set sample's seed: the configured seed and the test window's start, never the clock."""
    return [int(seed), int(pd.Timestamp(split.test_start).timestamp())]


@dataclass
class Registration:
    """The version a run registered (or found already registered) and the aliases it moved."""

    version: str
    created: bool
    promoted: bool
    previous_champion: str | None
    run_id: str
    held: str = ""  # why a passing candidate was not promoted (the champion moved meanwhile)
    links: dict[str, str] = field(default_factory=dict)  # drift report copy, models:/ URI, MLflow UI page


def register_candidate(
    registry: Any,
    *,
    candidate: Candidate,
    datasets: Datasets,
    window: Window,
    contract: Contract,
    settings: Settings,
    assessment: DriftAssessment,
    gates: Any,
    check: DataCheck,
    backtest: dict[str, Any] | None,
    champion: Champion | None,
    key: str,
    code: str,
    actor: str,
    drift_html: str | None = None,
) -> Registration:
    """Log the run and version with lineage tags; passing candidates become challenger (and champion).

    Every version carries ``drift_report.html``: the run's drift report with the decision that
    created the version, its windows and the weekly trend (for the first version, the recent
    window against its own reference; see :func:`driftline.story.version_report`), so the
    ``drift_html`` argument is not needed and is ignored. Once the aliases moved, the version
    gets its markdown description (first line: the trigger and the reason) and the registered
    model its own; a rerun that finds the version writes them only where they are missing.
    """
    from driftline import story

    metric = settings.gates.primary_metric
    trigger = assessment.trigger or "manual"
    measured = story.version_report(
        registry=registry,
        settings=settings,
        contract=contract,
        window=window,
        datasets=datasets,
        assessment=assessment,
        check=check,
        champion=champion,
        candidate=candidate,
    )
    test_metrics = {f"test.{k}": float(v) for k, v in candidate.metrics.items() if _finite(v) is not None}
    test_metrics.update(
        {f"tail.{k}": float(v) for k, v in (candidate.metrics.get("tail") or {}).items() if _finite(v) is not None}
    )
    bt = {}
    if backtest:
        bt = {
            f"backtest.{metric}.{s}": float(backtest[s])
            for s in ("mean", "std")
            if _finite(backtest.get(s)) is not None
        }
    tags = {
        "trigger": trigger,
        "as_of": window.as_of.isoformat(),
        "train_window": f"{window.split.train_start.isoformat()}/{window.split.train_end.isoformat()}",
        "test_window": f"{window.split.test_start.isoformat()}/{window.split.test_end.isoformat()}",
        "train_hash": datasets.train_hash,
        "test_hash": datasets.test_hash,
        "contract_fingerprint": contract.fingerprint(),
        "code_version": code,
        "parent_version": champion.version if champion else "",
        "primary_metric": metric,
        f"test.{metric}": _fmt(candidate.metrics.get(metric)),
        "champion_test_metric": _fmt((assessment.champion_metrics or {}).get(metric)),
        "validation_status": "passed" if not check.blocked else "failed",
        "decision": assessment.action,
        "decision_reasons": story.short(" | ".join(assessment.reasons), 300),
        "training_window": story.training_window_tag(backtest, settings.windows.train_weeks),
        "decision_codes": ",".join(dict.fromkeys(str(c.get("code")) for c in assessment.codes))[:500],
        "drift_summary": story.drift_tag(measured.report, trigger),
        **gates.to_tags(),
    }
    artifacts: dict[str, Any] = {
        "contract.yaml": contract.to_yaml(),
        "reference_profile.json": candidate.profile.to_json(),
        "validation.json": {"validation": check.validation, "skew": check.skew},
        "test_manifest.json": datasets.test_manifest,
        "gates.json": gates.to_dict(),
        "backtest.json": backtest or {},
        "decision.json": assessment.summary(),
    }
    artifacts["drift_report.html"] = measured.html
    sample = datasets.train
    if len(sample) > settings.training.training_sample_rows:
        sample = sample.sample(n=settings.training.training_sample_rows, random_state=settings.training.seed)
    tmp = (settings.home / "tmp").resolve()
    tmp.mkdir(parents=True, exist_ok=True)
    sample_path = tmp / f"training_sample-{key}.parquet"
    sample.to_parquet(sample_path, index=False)
    artifacts["training_sample.parquet"] = sample_path
    from driftline.training import features_frame

    params = {
        **candidate.model.params,
        "train_weeks": settings.windows.train_weeks,
        "train_weeks_chosen": candidate.training_window.get("train_weeks", settings.windows.train_weeks),
        "test_weeks": settings.windows.test_weeks,
        "label_delay_days": settings.windows.label_delay_days,
        "n_train": candidate.training_window.get("rows", len(datasets.train)),
        "n_test": len(datasets.test),
        "threshold": settings.training.threshold,
    }
    target = contract.target.name
    from driftline.registry import Verdict

    refusals = [f"{g['name']}: {g['detail']}" for g in gates.to_dict().get("gates", []) if not g.get("passed")]
    result = registry.register_candidate(
        verdict=Verdict(
            gates_passed=bool(gates.passed),
            validation_passed=not check.blocked,
            reasons=tuple(refusals + list(check.reasons)),
            code_version=code,
        ),
        pipeline=candidate.model.pipeline,
        input_example=features_frame(datasets.test.head(5), contract),
        params=params,
        metrics={**test_metrics, **bt},
        tags=tags,
        artifacts=artifacts,
        datasets=[(datasets.train, "training", target), (datasets.test, "testing", target)],
        idempotency_key=key,
        run_name=f"{trigger}-{window.as_of:%Y-%m-%d}",
    )
    sample_path.unlink(missing_ok=True)
    previous = champion.version if champion else None
    info = None if result.created else registry.get(result.version)
    # A rerun after a crash between registering and moving the aliases finishes the moves, but
    # only while the champion is still the one this candidate challenged and the version was
    # never champion (a rollback away from it must stick).
    unfinished = (
        info is not None
        and info.tags.get("parent_version", "") == (previous or "")
        and not any(m.to_version == result.version and m.state == "done" for m in registry.history("champion"))
    )
    held = ""
    if gates.passed and (result.created or unfinished):
        if info is None or "challenger" not in info.aliases:
            registry.set_alias("challenger", result.version, reason=f"passed gates ({trigger})", actor=actor)
        # Without a champion there is nothing to roll out against: the first version is champion at
        # once. After that a passing candidate stays challenger for the rollout unless auto_promote.
        promote_now = settings.gates.auto_promote or previous is None
        if promote_now and (info is None or "champion" not in info.aliases):
            try:
                # Compare-and-set: only replace the champion this candidate was judged against.
                registry.promote(
                    result.version,
                    "champion",
                    reason=f"auto-promote after {trigger} retrain (beat version {previous or 'none'})",
                    actor=actor,
                    expect_from=previous,
                )
            except RefusedError as e:
                if e.code != "moved":
                    raise
                held = f"registered as challenger, not promoted: {e}"
    promoted = registry.alias_version("champion") == result.version
    links = story.describe_registration(
        registry,
        settings=settings,
        contract=contract,
        version=result.version,
        run_id=result.run_id,
        created=result.created,
        html=measured.html,
        description=lambda outcome, reports: story.version_description(
            model_name=settings.model_name,
            trigger=trigger,
            action=assessment.action,
            codes=assessment.codes,
            metric=metric,
            candidate_metrics=candidate.metrics,
            champion_version=previous,
            champion_metrics=assessment.champion_metrics,
            gates=gates.to_dict(),
            outcome=outcome,
            windows=story.windows_of(window, settings, candidate, measured),
            sizes=story.sizes_of(datasets, window, candidate),
            lineage=story.lineage_of(datasets, contract, code),
            reports=reports,
            drift=tags["drift_summary"],
        ),
        outcome=story.alias_outcome(bool(gates.passed), promoted, held, trigger),
        data_docs=story.data_docs_of(check),
    )
    from driftline.registry.history import DecisionLog

    DecisionLog(registry.store).annotate(
        settings.model_name,
        window.split.test_start.isoformat(),
        story.week_figures(assessment, metric, candidate, result.version),
    )
    return Registration(result.version, result.created, promoted, previous, result.run_id, held, links)


def _fmt(v: Any) -> str:
    f = _finite(v)
    return "" if f is None else f"{f:.6f}"


def drift_html(assessment: DriftAssessment, model_name: str | None = None) -> str | None:
    """The run's drift report as HTML, showing the decision the run took, when drift was measured.

    The version's own report (windows, trend, the first version's too) is rendered by
    :func:`register_candidate`; this is the bare page for callers without a registry.
    """
    if assessment.report is None:
        return None
    from driftline.drift.report import ReportContext, render_html

    context = ReportContext(
        model_name=model_name or assessment.report.contract_name,
        action=assessment.action,
        codes=list(assessment.codes),
        trigger=assessment.trigger,
    )
    return render_html(assessment.report, context=context)


def known_vocabulary(champion: Champion | None, contract: Contract) -> dict[str, set[str]] | None:
    """Categories the champion was trained on (from its profile), for the test set's tail."""
    profile = profile_for(champion, contract)
    if profile is None:
        return {n: set(f.vocabulary) for n, f in contract.features.items() if f.vocabulary} or None
    vocab: dict[str, set[str]] = {}
    for name in contract.categorical:
        fp = profile.features.get(name)
        if fp is not None and getattr(fp, "vocabulary", None):
            vocab[name] = set(fp.vocabulary)
    return vocab or None


# -- the run's story ----------------------------------------------------------------------------
def run_summary(
    *,
    model_name: str,
    window: Window | None = None,
    datasets: Datasets | None = None,
    check: DataCheck | None = None,
    assessment: DriftAssessment | None = None,
    candidate: Candidate | None = None,
    gates: Any = None,
    registration: Registration | None = None,
    backtest: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One JSON-ready record of what a run saw and did (for artifacts, the CLI and the demo)."""
    if error is not None:
        action = "failed"
    elif check is not None and check.blocked:
        action = "blocked"
    elif registration is not None:
        if registration.promoted and registration.created:
            action = "promoted"
        elif registration.created:
            action = "registered"
        else:
            action = "already registered"
    elif assessment is not None:
        action = "no retrain" if assessment.action != "retrain" else "retrain"
    else:
        action = "unknown"
    out: dict[str, Any] = {"model": model_name, "action": action, "error": error}
    if window is not None:
        out["window"] = window.summary()
    if datasets is not None:
        out["datasets"] = datasets.summary()
        m = datasets.test_manifest
        tail = m.get("tail") or {}
        out["test_manifest"] = {
            "size": m.get("size"),
            "size_requested": m.get("size_requested"),
            "entities": m.get("entities"),
            "whole_pool": m.get("whole_pool"),
            "segment_share_gap": m.get("segment_share_gap"),
            "rare_segments": m.get("rare_segments"),
            "rare_segment_coverage": m.get("rare_segment_coverage"),
            "tail_kept": tail.get("kept"),
            "tail_cap": tail.get("cap"),
            "tail_by_reason": tail.get("by_reason"),
            "weighted_positive_rate": (m.get("weights") or {}).get("weighted_positive_rate"),
            "production_positive_rate": (m.get("positive_rate") or {}).get("production"),
        }
    reports: dict[str, str] = {}
    if check is not None:
        out["data_check"] = check.summary()
        if check.skew:
            out["skew_findings"] = check.skew.get("findings", [])
        from driftline.story import data_docs_of

        reports.update({f"data_docs.{k}": v for k, v in data_docs_of(check).items()})
    if assessment is not None:
        out["drift"] = assessment.summary()
        out["champion_metrics"] = assessment.champion_metrics
    if candidate is not None:
        out["candidate_metrics"] = candidate.metrics
        out["training_window"] = candidate.training_window
    if backtest is not None:
        out["backtest"] = {
            k: backtest.get(k) for k in ("metric", "mean", "std", "n_folds_used", "windows", "chosen_train_weeks")
        }
    if gates is not None:
        out["gates"] = gates.to_dict()
    if registration is not None:
        out["registration"] = {
            "version": registration.version,
            "created": registration.created,
            "promoted": registration.promoted,
            "previous_champion": registration.previous_champion,
            "run_id": registration.run_id,
            "held": registration.held,
        }
        links = registration.links
        out["mlflow"] = {
            "version": registration.version,
            "model_uri": links.get("model_uri") or f"models:/{model_name}/{registration.version}",
            "run_id": registration.run_id,
            "ui": links.get("mlflow_ui") or None,
        }
        if links.get("drift_report"):
            reports["drift_report"] = links["drift_report"]
    out["reports"] = reports
    return out


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as a short markdown page (the Prefect artifact): links first, sizes in words."""
    from driftline.story import sample_in_words

    lines = [f"# {summary['model']}: {summary['action']}", ""]
    if summary.get("error"):
        lines += [f"**Error:** {summary['error']}", ""]
    ml, reports = summary.get("mlflow"), summary.get("reports") or {}
    if ml or reports:
        lines.append("## Links")
        if ml:
            where = f"[open in the MLflow UI]({ml['ui']})" if ml.get("ui") else "MLflow UI → Models → the model"
            lines.append(
                f"- MLflow version {ml['version']}: `{ml['model_uri']}` ({where}; run `{ml['run_id']}`); its "
                "description says why it exists"
            )
        if reports.get("drift_report"):
            lines.append(f"- drift report (decision, windows, weekly trend): `{reports['drift_report']}`")
        for key, page in sorted(reports.items()):
            if key.startswith("data_docs."):
                lines.append(f"- Data Docs, {key.removeprefix('data_docs.')} data: `{page}`")
        lines.append("")
    w = summary.get("window")
    if w:
        sp = w["split"]
        lines += [
            "## Data window",
            f"- as of: {w['as_of']}",
            f"- train: {sp['train_start']} → {sp['train_end']}",
            f"- test: {sp['test_start']} → {sp['test_end']}",
            f"- labelled rows: {w['labelled_rows']:,}; recent rows: {w['recent_rows']:,}",
            "",
        ]
    d = summary.get("datasets")
    if d:
        lines += [
            "## Samples",
            f"- training rows: {d['train_rows']:,} (hash `{d['train_hash'][:12]}`)",
            f"- refreshed test set: {d['test_rows']:,} rows (hash `{d['test_hash'][:12]}`)",
        ]
        lines += [f"- {sentence}" for sentence in sample_in_words(summary.get("test_manifest") or {})]
        lines.append("")
    dc = summary.get("data_check")
    if dc:
        lines += ["## Validation and skew", f"- blocked: {dc['blocked']}"]
        lines += [f"- {r}" for r in dc["reasons"]]
        lines.append("")
    dr = summary.get("drift")
    if dr:
        lines += ["## Drift", f"- decision: **{dr['action']}** (trigger: {dr['trigger'] or '-'})"]
        lines += [f"- {r}" for r in dr["reasons"]]
        if dr["flagged"]:
            lines += ["", "| feature | PSI | severity |", "|---|---:|---|"]
            lines += [f"| {n} | {v['psi']:.4f} | {v['severity']} |" for n, v in dr["flagged"].items()]
        lines.append("")
    cand, champ = summary.get("candidate_metrics"), summary.get("champion_metrics")
    if cand or champ:
        lines += [
            "## Champion vs candidate (same refreshed test set)",
            "",
            "| metric | champion | candidate |",
            "|---|---:|---:|",
        ]
        for m in ("average_precision", "roc_auc", "precision", "recall", "f1"):
            a = (champ or {}).get(m)
            b = (cand or {}).get(m)
            lines.append(f"| {m} | {_fmt(a) or '-'} | {_fmt(b) or '-'} |")
        lines.append("")
    g = summary.get("gates")
    if g:
        lines += (
            ["## Gates", ""]
            + [f"- {'✅' if x['passed'] else '❌'} {x['name']}: {x['detail']}" for x in g["gates"]]
            + [""]
        )
    r = summary.get("registration")
    if r:
        lines += [
            "## Registry",
            f"- version {r['version']} ({'new' if r['created'] else 'already registered'});"
            f" promoted: {r['promoted']}; previous champion: {r['previous_champion'] or '-'}",
        ]
        if r.get("held"):
            lines.append(f"- {r['held']}")
    return "\n".join(lines) + "\n"
