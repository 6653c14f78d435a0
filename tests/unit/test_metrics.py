"""Metrics against hand-worked values and scikit-learn; backtests against an independent recomputation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from driftline.contract import parse_contract
from driftline.errors import ConfigError, InputError
from driftline.metrics import backtest, classification_metrics, summarise
from driftline.settings import TrainingSettings
from driftline.splits import apply_split, backtest_folds
from driftline.training import score, train

NAN = float("nan")


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(b[k], float) and math.isnan(b[k]):
            assert math.isnan(a[k]), k
        else:
            assert a[k] == pytest.approx(b[k]), k


def test_hand_worked_case() -> None:
    # Ranked: 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg).
    # AP = 0.5 * 1 + 0.5 * 2/3 = 5/6; AUC: 3 of 4 pos/neg pairs ordered right = 0.75.
    # Threshold 0.5 predicts only 0.8 positive: tp=1, fp=0, fn=1.
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.5)
    _same(
        m,
        {
            "average_precision": 5 / 6,
            "roc_auc": 0.75,
            "precision": 1.0,
            "recall": 0.5,
            "f1": 2 / 3,
            "positive_rate": 0.5,
            "predicted_positive_rate": 0.25,
            "n": 4,
            "n_positive": 2,
        },
    )


def test_threshold_is_inclusive() -> None:
    m = classification_metrics([1, 0], [0.5, 0.2], threshold=0.5)
    assert (m["precision"], m["recall"]) == (1.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, 200)
    s = np.clip(0.3 * y + rng.uniform(size=200) * 0.7, 0, 1)
    m = classification_metrics(y, s, threshold=0.6)
    pred = (s >= 0.6).astype(int)
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=np.nan))
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=np.nan))
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=np.nan))
    assert m["n"] == 200 and m["n_positive"] == int(y.sum())


def test_no_positives_gives_nan_where_undefined() -> None:
    m = classification_metrics([0, 0, 0], [0.9, 0.1, 0.2], threshold=0.5)
    assert math.isnan(m["average_precision"]) and math.isnan(m["roc_auc"]) and math.isnan(m["recall"])
    assert m["precision"] == 0.0  # one false positive: defined, and zero
    assert m["f1"] == 0.0  # 2tp / (2tp + fp + fn) = 0 / 1
    assert m["positive_rate"] == 0.0 and m["n_positive"] == 0
    quiet = classification_metrics([0, 0], [0.1, 0.2], threshold=0.5)
    assert math.isnan(quiet["precision"]) and math.isnan(quiet["f1"])


def test_only_positives_has_ap_but_no_auc() -> None:
    m = classification_metrics([1, 1], [0.2, 0.9], threshold=0.5)
    assert m["average_precision"] == 1.0 and math.isnan(m["roc_auc"])
    assert (m["precision"], m["recall"]) == (1.0, 0.5)


def test_empty_window() -> None:
    m = classification_metrics([], [], 0.5)
    assert m["n"] == 0 and m["n_positive"] == 0
    assert all(math.isnan(m[k]) for k in ("average_precision", "roc_auc", "precision", "recall", "f1"))


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="NaN"):
        classification_metrics([0, 1], [0.1, np.nan])
    with pytest.raises(InputError, match="differ in length"):
        classification_metrics([0, 1], [0.1])
    with pytest.raises(InputError, match="0/1"):
        classification_metrics([0, 2], [0.1, 0.2])


def test_summarise() -> None:
    mean, std, used = summarise([0.5, 0.7, NAN])
    assert (mean, used) == (pytest.approx(0.6), 2)
    assert std == pytest.approx(np.std([0.5, 0.7], ddof=1))
    one = summarise([0.4])
    assert one[0] == 0.4 and math.isnan(one[1]) and one[2] == 1
    assert summarise([])[2] == 0


# -- backtest ---------------------------------------------------------------------------------
CONTRACT = parse_contract(
    {
        "entity_id": "user_id",
        "request_id": "request_id",
        "timestamp": "event_time",
        "target": {"name": "churned"},
        "features": {"x": {"type": "numeric"}, "plan": {"type": "categorical"}},
    }
)
SETTINGS = TrainingSettings(estimator_params={"max_iter": 10})
AS_OF = pd.Timestamp("2024-03-13 12:00")  # delay 7 -> current test week [02-26, 03-04)


def _labelled(weeks: int = 8, per_week: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = weeks * per_week
    start = pd.Timestamp("2024-03-04") - pd.Timedelta(weeks=weeks)
    x = rng.normal(size=n)
    plan = rng.choice(["free", "pro"], n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(2 * x + (plan == "free")))))
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "user_id": rng.integers(0, 300, n),
            "event_time": start + pd.to_timedelta(rng.integers(0, weeks * 7 * 86400, n), unit="s"),
            "x": x,
            "plan": plan,
            "churned": y,
        }
    )


def test_backtest_matches_independent_recomputation() -> None:
    frame = _labelled()
    folds = backtest_folds(AS_OF, train_weeks=3, test_weeks=1, label_delay_days=7, k=3)
    result = backtest(frame, CONTRACT, folds, SETTINGS, "average_precision")
    assert result["metric"] == "average_precision" and len(result["folds"]) == 3
    expected = []
    for fold, got in zip(folds, result["folds"], strict=True):
        tr, te = apply_split(frame, fold, CONTRACT)
        s = score(train(tr, CONTRACT, SETTINGS).pipeline, te, CONTRACT)
        expected.append(average_precision_score(te["churned"], s))
        assert got["test_start"] == fold.test_start.isoformat()
        assert (got["n_train"], got["n_test"], got["skipped"]) == (len(tr), len(te), None)
        assert got["average_precision"] == pytest.approx(expected[-1])
        assert got["roc_auc"] == pytest.approx(roc_auc_score(te["churned"], s))
    assert result["mean"] == pytest.approx(np.mean(expected))
    assert result["std"] == pytest.approx(np.std(expected, ddof=1))
    assert result["n_folds_used"] == 3


def test_backtest_skips_folds_without_data() -> None:
    frame = _labelled(weeks=5)  # starts 2024-01-29: the oldest folds have no test data
    folds = backtest_folds(AS_OF, train_weeks=2, test_weeks=1, label_delay_days=7, k=5)
    result = backtest(frame, CONTRACT, folds, SETTINGS, "roc_auc")
    skipped = [f["skipped"] for f in result["folds"]]
    assert skipped[0] == "no labelled rows in the test window"  # test week 01-22..01-29
    assert skipped[1] is not None and "empty" in skipped[1]  # test week 01-29, no training data
    assert skipped[2:] == [None, None, None]
    used = [f["roc_auc"] for f in result["folds"][2:]]
    assert result["n_folds_used"] == 3 and result["mean"] == pytest.approx(np.mean(used))
    assert math.isnan(result["folds"][0]["roc_auc"])


def test_backtest_config_errors_are_not_swallowed() -> None:
    folds = backtest_folds(AS_OF, 2, 1, 7, k=1)
    with pytest.raises(ConfigError, match="unknown estimator"):
        backtest(_labelled(), CONTRACT, folds, TrainingSettings(estimator="nope"), "average_precision")
    with pytest.raises(InputError, match="unknown metric"):
        backtest(_labelled(), CONTRACT, folds, SETTINGS, "accuracy")
