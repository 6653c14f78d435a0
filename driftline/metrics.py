"""Classification metrics on a labelled window, and rolling-origin backtests.

Undefined values are NaN, never a made-up 0: a week with no churners has no average precision
and no recall; a week with one class has no ROC AUC; a model that predicts no positives has
no precision. Gates treat NaN explicitly (see :mod:`driftline.gates`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from driftline.contract import Contract
from driftline.errors import DriftlineError, InputError
from driftline.labels import binary_target
from driftline.settings import TrainingSettings
from driftline.splits import TemporalSplit, apply_split
from driftline.training import estimator_spec, score, train

METRIC_NAMES = ("average_precision", "roc_auc", "precision", "recall", "f1")
NAN = float("nan")


def _ratio(num: float, den: float) -> float:
    return num / den if den else NAN


def classification_metrics(
    y_true: Any, y_score: Any, threshold: float = 0.5, sample_weight: Any = None
) -> dict[str, float | int]:
    """Metrics of scores against 0/1 labels; a row is predicted positive when ``score >= threshold``.

    Returns average_precision and roc_auc (scikit-learn), precision = tp/(tp+fp),
    recall = tp/(tp+fn), f1 = 2tp/(2tp+fp+fn), positive_rate (share of true positives among
    rows), predicted_positive_rate, n and n_positive. With ``sample_weight`` (e.g. the refreshed
    test set's inverse-inclusion weights) every metric and rate is weighted, so it estimates the
    population the sample was drawn from; ``n`` and ``n_positive`` stay row counts. Undefined
    values are NaN: average_precision and recall without positives, roc_auc with a single class,
    precision without predicted positives, f1 when there are neither positives nor predicted
    positives, every rate when n == 0.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise InputError(f"labels and scores differ in length: {len(y)} vs {len(s)}")
    if np.isnan(s).any():
        raise InputError(f"{int(np.isnan(s).sum())} score(s) are NaN")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"labels must be 0/1, got values {sorted(set(np.unique(y).tolist()) - {0, 1})}")
    w = _weights(sample_weight, len(y))
    n = len(y)
    n_pos = int(y.sum())
    pred = s >= threshold
    tp = float(np.sum(w[pred & (y == 1)]))
    fp = float(np.sum(w[pred & (y == 0)]))
    fn = float(np.sum(w[~pred & (y == 1)]))
    total, pos_w = float(w.sum()), float(w[y == 1].sum())
    kw = {} if sample_weight is None else {"sample_weight": w}
    return {
        "average_precision": float(average_precision_score(y, s, **kw)) if pos_w > 0 else NAN,
        "roc_auc": float(roc_auc_score(y, s, **kw)) if 0 < pos_w < total else NAN,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "positive_rate": _ratio(pos_w, total),
        "predicted_positive_rate": _ratio(float(w[pred].sum()), total),
        "n": n,
        "n_positive": n_pos,
    }


def _weights(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64).ravel()
    if w.shape != (n,):
        raise InputError(f"sample weights and labels differ in length: {len(w)} vs {n}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError("sample weights must be finite and non-negative")
    return w


# -- intervals ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval (NaN where undefined)."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "estimate": clean(self.estimate),
            "low": clean(self.low),
            "high": clean(self.high),
            "confidence": self.confidence,
            "resamples": self.resamples,
        }

    def text(self, signed: bool = False) -> str:
        f = "{:+.4f}" if signed else "{:.4f}"
        if not math.isfinite(self.estimate):
            return "undefined"
        lo = f.format(self.low) if math.isfinite(self.low) else "?"
        hi = f.format(self.high) if math.isfinite(self.high) else "?"
        return f"{f.format(self.estimate)} ({self.confidence:.0%} interval {lo} … {hi})"


_CELLS_PER_CHUNK = 2_000_000  # resamples x rows held at once: bounds memory whatever the test-set size


def _resample_weights(w: np.ndarray, rng: np.random.Generator, resamples: int) -> Iterator[np.ndarray]:
    """Bootstrap as weights, in chunks: row i drawn c_i times (multinomial) carries weight c_i * w_i."""
    n = len(w)
    step = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size) if n else np.zeros((size, 0))
        yield counts * w[None, :]


def _batch_metric(name: str, y: np.ndarray, s: np.ndarray, W: np.ndarray, threshold: float) -> np.ndarray:
    """``name`` under each row of weights ``W`` (resamples x rows), vectorised.

    Same definitions as :func:`classification_metrics` (scikit-learn's, ties included): average
    precision sums (R_k - R_{k-1}) P_k over distinct thresholds; ROC AUC is the trapezoidal area
    under the ROC curve; precision/recall/f1 use ``score >= threshold``. NaN where undefined.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if name in ("precision", "recall", "f1"):
            pred = s >= threshold
            tp = W[:, pred & (y == 1)].sum(axis=1)
            fp = W[:, pred & (y == 0)].sum(axis=1)
            fn = W[:, ~pred & (y == 1)].sum(axis=1)
            if name == "precision":
                return np.where(tp + fp > 0, tp / (tp + fp), np.nan)
            if name == "recall":
                return np.where(tp + fn > 0, tp / (tp + fn), np.nan)
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        order = np.argsort(-s, kind="mergesort")
        ys, ss, Ws = y[order], s[order], W[:, order]
        last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1] if len(ss) else np.zeros(0, np.int64)
        tps = np.cumsum(Ws * ys[None, :], axis=1)[:, last]
        fps = np.cumsum(Ws * (1 - ys)[None, :], axis=1)[:, last]
        pos, neg = (
            tps[:, -1:] if len(last) else np.zeros((len(W), 1)),
            fps[:, -1:] if len(last) else np.zeros((len(W), 1)),
        )
        if name == "average_precision":
            precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            recall = tps / pos
            ap = np.sum(np.diff(np.concatenate([np.zeros((len(W), 1)), recall], axis=1), axis=1) * precision, axis=1)
            return np.where(pos[:, 0] > 0, ap, np.nan)
        if name == "roc_auc":
            tpr = np.concatenate([np.zeros((len(W), 1)), tps / pos], axis=1)
            fpr = np.concatenate([np.zeros((len(W), 1)), fps / neg], axis=1)
            auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
            return np.where((pos[:, 0] > 0) & (neg[:, 0] > 0), auc, np.nan)
    raise InputError(f"unknown metric {name!r}; valid: {', '.join(METRIC_NAMES)}")


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) < max(10, len(values) // 2):  # mostly undefined resamples: no honest interval
        return NAN, NAN
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_interval(
    metric: str,
    y_true: Any,
    y_score: Any,
    rng: np.random.Generator,
    *,
    threshold: float = 0.5,
    sample_weight: Any = None,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> Interval:
    """``metric`` on the rows with a bootstrap percentile interval (rows resampled with replacement)."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    w = _weights(sample_weight, len(y))
    estimate = float(classification_metrics(y, s, threshold, sample_weight)[metric])
    values = np.concatenate([_batch_metric(metric, y, s, W, threshold) for W in _resample_weights(w, rng, resamples)])
    lo, hi = _percentiles(values, confidence)
    return Interval(estimate, lo, hi, confidence, resamples)


def paired_difference(
    metric: str,
    y_true: Any,
    candidate_score: Any,
    champion_score: Any,
    rng: np.random.Generator,
    *,
    threshold: float = 0.5,
    sample_weight: Any = None,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> Interval:
    """``metric(candidate) - metric(champion)`` on the same rows, with a paired bootstrap interval.

    Each resample draws one set of rows and scores both models on it, so the interval is of the
    difference itself (much narrower than two separate intervals when the models agree).
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    a = np.asarray(candidate_score, dtype=np.float64).ravel()
    b = np.asarray(champion_score, dtype=np.float64).ravel()
    w = _weights(sample_weight, len(y))
    estimate = float(classification_metrics(y, a, threshold, sample_weight)[metric]) - float(
        classification_metrics(y, b, threshold, sample_weight)[metric]
    )
    diff = np.concatenate(
        [
            _batch_metric(metric, y, a, W, threshold) - _batch_metric(metric, y, b, W, threshold)
            for W in _resample_weights(w, rng, resamples)
        ]
    )
    lo, hi = _percentiles(diff, confidence)
    return Interval(estimate, lo, hi, confidence, resamples)


def summarise(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, count) over the finite values; NaN where undefined."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return NAN, NAN, 0
    arr = np.asarray(finite, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) >= 2 else NAN
    return float(arr.mean()), std, len(arr)


def backtest(
    frame: pd.DataFrame,
    contract: Contract,
    folds: list[TemporalSplit],
    settings: TrainingSettings,
    primary_metric: str = "average_precision",
) -> dict[str, Any]:
    """Train and evaluate one model per fold; summarise the primary metric across folds.

    ``frame`` is labelled data (e.g. from :func:`driftline.labels.join_labels`) covering the
    folds. Each fold is cut with :func:`driftline.splits.apply_split`, trained with
    :func:`driftline.training.train` and scored at ``settings.threshold``. A fold that cannot
    be evaluated (empty test window, a single class in training) is kept with ``skipped`` set
    to the reason and NaN metrics. ``mean``/``std`` (ddof=1) are over folds whose primary
    metric is defined; ``std`` is NaN with fewer than two such folds.
    """
    if primary_metric not in METRIC_NAMES:
        raise InputError(f"unknown metric {primary_metric!r}; valid: {', '.join(METRIC_NAMES)}")
    if contract.target.name not in frame.columns:
        raise InputError(f"backtest: frame has no target column {contract.target.name!r}")
    estimator_spec(settings.estimator)  # a bad name is a config error, not a skipped fold
    results: list[dict[str, Any]] = []
    for i, fold in enumerate(folds):
        train_df, test_df = apply_split(frame, fold, contract)
        record: dict[str, Any] = {"fold": i, **fold.to_dict(), "n_train": len(train_df), "n_test": len(test_df)}
        skipped = None
        metrics: dict[str, Any] = {m: NAN for m in METRIC_NAMES}
        if len(test_df) == 0:
            skipped = "no labelled rows in the test window"
        else:
            try:
                model = train(train_df, contract, settings)
            except DriftlineError as e:
                skipped = str(e)
            else:
                y = binary_target(test_df[contract.target.name], contract)
                metrics = classification_metrics(y, score(model.pipeline, test_df, contract), settings.threshold)
        record.update(metrics)
        record["skipped"] = skipped
        results.append(record)
    mean, std, used = summarise([r[primary_metric] for r in results])
    return {"metric": primary_metric, "folds": results, "mean": mean, "std": std, "n_folds_used": used}
