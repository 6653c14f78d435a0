"""Performance of the deployed model on a labelled window, and its change against the reference.

Metrics are computed with numpy (no scikit-learn import on the drift path) and match
scikit-learn's definitions, ties included:

- ``roc_auc``: the Mann-Whitney statistic with average ranks for tied scores
  (= ``sklearn.metrics.roc_auc_score``);
- ``average_precision``: sum over distinct score thresholds of (R_n - R_{n-1}) * P_n
  (= ``sklearn.metrics.average_precision_score``);
- ``precision`` and ``recall`` of the rule ``score >= threshold``.

A metric that is undefined on the window (one class only, no predicted positive) is ``None``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("roc_auc", "average_precision", "precision", "recall")


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(y_true).astype(bool)
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(np.asarray(y_score, dtype=np.float64), method="average")
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Average precision over distinct score thresholds; None without positives."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    pos = int(y.sum())
    if pos == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def performance_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> dict[str, Any]:
    """ROC AUC, average precision, precision and recall at ``threshold``, plus counts."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but y_score has {s.size}")
    pred = s >= threshold
    tp = int(np.count_nonzero(pred & y))
    n_pred = int(np.count_nonzero(pred))
    pos = int(np.count_nonzero(y))
    return {
        "roc_auc": roc_auc(y, s),
        "average_precision": average_precision(y, s),
        "precision": tp / n_pred if n_pred else None,
        "recall": tp / pos if pos else None,
        "n": int(y.size),
        "positives": pos,
        "base_rate": pos / y.size if y.size else None,
        "predicted_positive_rate": n_pred / y.size if y.size else None,
        "threshold": float(threshold),
    }


def change(reference: float | None, current: float | None) -> dict[str, float | None]:
    """Absolute (current - reference) and relative ((current - reference) / reference) change."""
    if reference is None or current is None:
        return {"reference": reference, "current": current, "absolute": None, "relative": None}
    absolute = current - reference
    relative = absolute / reference if reference != 0 else None
    return {"reference": reference, "current": current, "absolute": absolute, "relative": relative}


def performance_drift(
    reference_perf: dict[str, Any], y_true: np.ndarray, y_score: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Metrics on the labelled window against ``reference_perf`` (a :func:`performance_metrics` dict).

    Returns ``{"reference", "current", "change": {metric: {reference, current, absolute,
    relative}}, "threshold"}``; a relative drop of 10% shows as ``relative == -0.10``.
    """
    current = performance_metrics(y_true, y_score, threshold)
    keys = [*METRICS, "base_rate", "predicted_positive_rate"]
    return {
        "reference": {k: reference_perf.get(k) for k in [*keys, "n", "positives"]},
        "current": current,
        "change": {k: change(reference_perf.get(k), current.get(k)) for k in keys},
        "threshold": float(threshold),
    }
