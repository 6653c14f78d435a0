"""Performance metrics match scikit-learn (ties included); changes are absolute and relative."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from driftline.drift import performance_drift, performance_metrics


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 2000))
    y = rng.random(n) < 0.3
    s = np.round(np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1), 2)  # rounded: many ties
    m = performance_metrics(y, s, 0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, s >= 0.5), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, s >= 0.5), abs=1e-12)
    assert m["n"] == n and m["n_positive"] == int(y.sum())
    assert m["positive_rate"] == pytest.approx(y.mean(), abs=1e-12)


def test_hand_worked_small_case() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.4, 0.1])
    m = performance_metrics(y, s, 0.5)
    assert m["roc_auc"] == 0.75  # pairs (pos, neg) ranked right: 3 of 4
    assert m["average_precision"] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert (m["precision"], m["recall"]) == (0.5, 0.5)


def test_undefined_metrics_are_none() -> None:
    m = performance_metrics(np.zeros(5), np.linspace(0, 0.4, 5), 0.5)
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["precision"] is None and m["recall"] is None


def test_performance_drift_changes() -> None:
    ref = {"roc_auc": 0.8, "average_precision": 0.5, "precision": 0.6, "recall": 0.5}
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.4, 0.1])
    out = performance_drift(ref, y, s, 0.5)
    ch = out["change"]["roc_auc"]
    assert ch["reference"] == 0.8 and ch["current"] == 0.75
    assert ch["absolute"] == pytest.approx(-0.05)
    assert ch["relative"] == pytest.approx(-0.05 / 0.8)
    assert out["change"]["recall"]["relative"] == 0.0
    # Every metric the gates accept, and the base rate, under the keys the rest of driftline uses.
    assert set(out["change"]) == {"average_precision", "roc_auc", "precision", "recall", "f1", "positive_rate",
                                  "predicted_positive_rate"}  # fmt: skip
    assert out["change"]["f1"]["reference"] is None and out["change"]["f1"]["current"] == 0.5
    assert out["change"]["positive_rate"]["current"] == 0.5


def test_weighted_metrics_estimate_the_population() -> None:
    # Rows (y, s) with weights: the weighted metrics equal those of the rows repeated by weight.
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.3, 0.1])
    w = np.array([1.0, 3.0, 2.0, 1.0, 4.0])
    repeated = performance_metrics(np.repeat(y, w.astype(int)), np.repeat(s, w.astype(int)), 0.5)
    weighted = performance_metrics(y, s, 0.5, sample_weight=w)
    for k in ("average_precision", "roc_auc", "precision", "recall", "f1", "positive_rate"):
        assert weighted[k] == pytest.approx(repeated[k], abs=1e-12), k
