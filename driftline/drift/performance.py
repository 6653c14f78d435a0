"""Performance of the deployed model on a labelled window, and its change against the reference.

One set of definitions for the whole project: every number comes from
:func:`driftline.metrics.classification_metrics` (scikit-learn's average precision and ROC AUC;
precision, recall and f1 of the rule ``score >= threshold``), so the champion, the candidate,
the performance trigger and the gates read the same keys (``average_precision``, ``roc_auc``,
``precision``, ``recall``, ``f1``, ``positive_rate``, ``predicted_positive_rate``, ``n``,
``n_positive``). A metric that is undefined on the window (one class only, no predicted
positive) is ``None`` here (JSON-ready), NaN in :mod:`driftline.metrics`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from driftline.metrics import METRIC_NAMES

METRICS = METRIC_NAMES
RATES = ("positive_rate", "predicted_positive_rate")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def performance_metrics(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float, sample_weight: Any = None
) -> dict[str, Any]:
    """Every metric and rate at ``threshold`` (weighted when ``sample_weight`` is given), plus counts."""
    from driftline.metrics import classification_metrics

    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but y_score has {s.size}")
    out = {k: _clean(v) for k, v in classification_metrics(y, s, threshold, sample_weight).items()}
    out["threshold"] = float(threshold)
    return out


def change(reference: float | None, current: float | None) -> dict[str, float | None]:
    """Absolute (current - reference) and relative ((current - reference) / reference) change."""
    if reference is None or current is None:
        return {"reference": reference, "current": current, "absolute": None, "relative": None}
    absolute = current - reference
    relative = absolute / reference if reference != 0 else None
    return {"reference": reference, "current": current, "absolute": absolute, "relative": relative}


def performance_drift(
    reference_perf: dict[str, Any],
    y_true: np.ndarray,
    y_score: np.ndarray,
    threshold: float,
    sample_weight: Any = None,
) -> dict[str, Any]:
    """Metrics on the labelled window against ``reference_perf`` (same keys as :func:`performance_metrics`).

    Returns ``{"reference", "current", "change": {metric: {reference, current, absolute,
    relative}}, "threshold"}`` for every metric and both rates (the base-rate change is
    ``change["positive_rate"]``); a relative drop of 10% shows as ``relative == -0.10``.
    """
    current = performance_metrics(y_true, y_score, threshold, sample_weight)
    keys = [*METRICS, *RATES]
    reference = {k: _clean(reference_perf.get(k)) for k in [*keys, "n", "n_positive"]}
    return {
        "reference": reference,
        "current": current,
        "change": {k: change(reference.get(k), current.get(k)) for k in keys},
        "threshold": float(threshold),
    }
