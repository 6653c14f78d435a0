"""Classification metrics on a labelled window, and rolling-origin backtests.

Undefined values are NaN, never a made-up 0: a week with no churners has no average precision
and no recall; a week with one class has no ROC AUC; a model that predicts no positives has
no precision. Gates treat NaN explicitly (see :mod:`driftline.gates`).
"""

from __future__ import annotations

import math
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


def _ratio(num: int, den: int) -> float:
    return num / den if den else NAN


def classification_metrics(y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, float | int]:
    """Metrics of scores against 0/1 labels; a row is predicted positive when ``score >= threshold``.

    Returns average_precision and roc_auc (scikit-learn), precision = tp/(tp+fp),
    recall = tp/(tp+fn), f1 = 2tp/(2tp+fp+fn), positive_rate (share of true positives among
    rows), predicted_positive_rate, n and n_positive. Undefined values are NaN:
    average_precision and recall without positives, roc_auc with a single class, precision
    without predicted positives, f1 when there are neither positives nor predicted positives,
    every rate when n == 0.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise InputError(f"labels and scores differ in length: {len(y)} vs {len(s)}")
    if np.isnan(s).any():
        raise InputError(f"{int(np.isnan(s).sum())} score(s) are NaN")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"labels must be 0/1, got values {sorted(set(np.unique(y).tolist()) - {0, 1})}")
    n = len(y)
    n_pos = int(y.sum())
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return {
        "average_precision": float(average_precision_score(y, s)) if n_pos > 0 else NAN,
        "roc_auc": float(roc_auc_score(y, s)) if 0 < n_pos < n else NAN,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "positive_rate": _ratio(n_pos, n),
        "predicted_positive_rate": _ratio(int(pred.sum()), n),
        "n": n,
        "n_positive": n_pos,
    }


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
