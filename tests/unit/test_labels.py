"""Label join: the label delay excludes recent predictions (never counts them as negative)."""

from __future__ import annotations

import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.labels import canonical_label, join_labels, join_labels_with_stats, label_cutoff


def _contract(positive: object = 1):
    return parse_contract(
        {
            "entity_id": "user_id",
            "request_id": "request_id",
            "timestamp": "event_time",
            "target": {"name": "churned", "positive": positive},
            "features": {"plan": {"type": "categorical"}},
        }
    )


AS_OF = pd.Timestamp("2024-03-10 12:00")  # cutoff with a 7-day delay: 2024-03-03 12:00


def _predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7"],
            "user_id": ["a", "b", "c", "d", "e", "f", "g"],
            "event_time": pd.to_datetime(
                [
                    "2024-03-01 00:00",  # old enough, outcome 1 arrived -> kept, 1
                    "2024-03-02 00:00",  # old enough, outcome 0 arrived -> kept, 0
                    "2024-03-07 12:00",  # 3 days before as_of: label window open -> excluded
                    "2024-03-07 12:00",  # 3 days before, no outcome -> excluded (NOT a negative)
                    "2024-03-01 00:00",  # outcome observed after as_of -> excluded
                    "2024-03-03 12:00",  # exactly at the cutoff -> kept
                    "2024-03-01 00:00",  # old enough but no outcome -> excluded
                ]
            ),
            "plan": ["free", "pro", "free", "pro", "free", "pro", "free"],
        }
    )


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r5", "r6"],
            "user_id": ["a", "b", "c", "e", "f"],
            "churned": [1, 0, 0, 1, 1],
            "observed_time": pd.to_datetime(
                ["2024-03-08 00:00", "2024-03-09 00:00", "2024-03-09 00:00", "2024-03-11 00:00", "2024-03-10 12:00"]
            ),
        }
    )


def test_label_delay_and_arrival_rules_exact_rows() -> None:
    out = join_labels(_predictions(), _outcomes(), _contract(), AS_OF, 7)
    assert out["request_id"].tolist() == ["r1", "r2", "r6"]
    assert out["churned"].tolist() == [1, 0, 1]
    assert out["churned"].dtype == "int64"
    assert list(out.columns) == ["request_id", "user_id", "event_time", "plan", "churned"]


def test_recent_prediction_is_excluded_not_negative() -> None:
    out = join_labels(_predictions(), _outcomes(), _contract(), AS_OF, 7)
    assert "r3" not in set(out["request_id"])  # its outcome (0) is in, but the window is still open
    assert "r4" not in set(out["request_id"])  # no outcome yet: not counted as a 0
    # With no delay, r3 (outcome observed) is in; r4 still is not (no outcome at all).
    out0 = join_labels(_predictions(), _outcomes(), _contract(), AS_OF, 0)
    assert out0["request_id"].tolist() == ["r1", "r2", "r3", "r6"]


def test_outcome_observed_after_as_of_is_excluded() -> None:
    out = join_labels(_predictions(), _outcomes(), _contract(), AS_OF, 7)
    assert "r5" not in set(out["request_id"])
    later = join_labels(_predictions(), _outcomes(), _contract(), pd.Timestamp("2024-03-11"), 7)
    assert "r5" in set(later["request_id"])


def test_stats_count_every_excluded_prediction() -> None:
    _, stats = join_labels_with_stats(_predictions(), _outcomes(), _contract(), AS_OF, 7)
    assert stats.to_dict() == {
        "cutoff": "2024-03-03T12:00:00",
        "n_predictions": 7,
        "n_too_recent": 2,
        "n_unlabelled": 2,
        "n_labelled": 3,
        "n_positive": 2,
    }


def test_tz_aware_as_of_is_converted_to_utc() -> None:
    aware = pd.Timestamp("2024-03-10 14:00", tz="Europe/Berlin")  # = 13:00 UTC
    assert label_cutoff(aware, 7) == pd.Timestamp("2024-03-03 13:00")
    out = join_labels(_predictions(), _outcomes(), _contract(), aware, 7)
    assert out["request_id"].tolist() == ["r1", "r2", "r6"]


def test_positive_compared_as_canonical_strings() -> None:
    preds = _predictions().iloc[:2]
    outs = _outcomes().iloc[:2].assign(churned=["yes", "no"])
    assert join_labels(preds, outs, _contract("yes"), AS_OF, 7)["churned"].tolist() == [1, 0]
    outs = _outcomes().iloc[:2].assign(churned=[1.0, 0.0])
    assert join_labels(preds, outs, _contract(1), AS_OF, 7)["churned"].tolist() == [1, 0]
    outs = _outcomes().iloc[:2].assign(churned=["1", "0"])
    assert join_labels(preds, outs, _contract(True), AS_OF, 7)["churned"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "1"),
        (False, "0"),
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        (" 1.0 ", "1"),
        ("TRUE", "1"),
        ("Yes", "yes"),
        (0.5, "0.5"),
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
    ],
)
def test_canonical_label(value: object, expected: str | None) -> None:
    assert canonical_label(value) == expected


def test_latest_outcome_by_as_of_wins() -> None:
    preds = _predictions().iloc[:1]
    outs = pd.DataFrame(
        {
            "request_id": ["r1", "r1"],
            "user_id": ["a", "a"],
            "churned": [0, 1],
            "observed_time": pd.to_datetime(["2024-03-05", "2024-03-08"]),
        }
    )
    assert join_labels(preds, outs, _contract(), AS_OF, 7)["churned"].tolist() == [1]
    # Before the correction arrived, the first outcome holds.
    assert join_labels(preds, outs, _contract(), pd.Timestamp("2024-03-06"), 0)["churned"].tolist() == [0]


def test_missing_outcome_value_counts_as_not_arrived() -> None:
    outs = _outcomes().assign(churned=[1, None, 0, 1, 1])
    out = join_labels(_predictions(), outs, _contract(), AS_OF, 7)
    assert out["request_id"].tolist() == ["r1", "r6"]


def test_existing_target_in_predictions_is_replaced() -> None:
    preds = _predictions().assign(churned=0)
    out = join_labels(preds, _outcomes(), _contract(), AS_OF, 7)
    assert out["churned"].tolist() == [1, 0, 1]


def test_missing_column_is_named() -> None:
    with pytest.raises(InputError, match=r"outcomes: missing column\(s\) \['observed_time'\]"):
        join_labels(_predictions(), _outcomes().drop(columns="observed_time"), _contract(), AS_OF, 7)
    with pytest.raises(InputError, match="predictions: missing"):
        join_labels(_predictions().drop(columns="event_time"), _outcomes(), _contract(), AS_OF, 7)


def test_outcome_for_another_entity_is_an_error() -> None:
    outs = _outcomes().assign(user_id=["a", "zzz", "c", "e", "f"])
    with pytest.raises(InputError, match="request 'r2' belongs to user_id 'zzz'"):
        join_labels(_predictions(), outs, _contract(), AS_OF, 7)


def test_negative_delay_rejected() -> None:
    with pytest.raises(InputError, match="label_delay_days"):
        join_labels(_predictions(), _outcomes(), _contract(), AS_OF, -1)


def test_duplicate_index_labels_do_not_multiply_rows() -> None:
    preds = _predictions().set_index(pd.Index([0] * 7))
    outs = _outcomes().set_index(pd.Index([5] * 5))
    out = join_labels(preds, outs, _contract(), AS_OF, 7)
    assert out["request_id"].tolist() == ["r1", "r2", "r6"]


def test_outcomes_without_entity_join_on_request_id_alone():
    preds = pd.DataFrame(
        {"request_id": ["a", "b"], "user_id": ["u1", "u2"], "event_time": pd.to_datetime(["2026-01-05", "2026-01-06"])}
    )
    outcomes = pd.DataFrame(
        {
            "request_id": ["a", "b"],
            "user_id": [None, "u2"],
            "churned": ["1", "0"],
            "observed_time": pd.to_datetime(["2026-01-12", "2026-01-13"]),
        }
    )
    out = join_labels(preds, outcomes, _contract(), "2026-01-20", 7)
    assert out["churned"].tolist() == [1, 0] and out["user_id"].tolist() == ["u1", "u2"]
