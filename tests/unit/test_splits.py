"""Whole-week temporal splits on hand-made dates, and the leakage rule of apply_split."""

from __future__ import annotations

import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.splits import (
    TemporalSplit,
    apply_split,
    backtest_folds,
    temporal_split,
    week_start,
    whole_weeks_before,
)

T = pd.Timestamp
CONTRACT = parse_contract(
    {
        "entity_id": "user_id",
        "request_id": "request_id",
        "timestamp": "event_time",
        "target": {"name": "churned"},
        "features": {"x": {"type": "numeric"}},
    }
)


@pytest.mark.parametrize(
    ("ts", "first", "expected"),
    [
        ("2024-03-13 15:00", "monday", "2024-03-11"),  # Wednesday -> Monday
        ("2024-03-11 00:00", "monday", "2024-03-11"),  # a week start is its own start
        ("2024-03-10 23:59:59", "monday", "2024-03-04"),  # Sunday night belongs to the previous week
        ("2024-03-13 15:00", "sunday", "2024-03-10"),
        ("2024-03-10 00:00", "sunday", "2024-03-10"),
    ],
)
def test_week_start(ts: str, first: str, expected: str) -> None:
    assert week_start(ts, first) == T(expected)


def test_week_start_converts_tz_aware_to_utc() -> None:
    # Monday 00:30 in Berlin (UTC+1 in March) is Sunday 23:30 UTC -> the UTC week that started the Monday before.
    assert week_start(T("2024-03-11 00:30", tz="Europe/Berlin")) == T("2024-03-04")


def test_week_start_rejects_unknown_day() -> None:
    with pytest.raises(InputError, match="week_start"):
        week_start("2024-03-13", "friday")  # type: ignore[arg-type]


def test_whole_weeks_before_leaves_out_the_week_in_progress() -> None:
    assert whole_weeks_before("2024-03-13 15:00", 2) == [
        (T("2024-02-26"), T("2024-03-04")),
        (T("2024-03-04"), T("2024-03-11")),
    ]
    # At exactly a week start the week that just ended is whole.
    assert whole_weeks_before("2024-03-11", 1) == [(T("2024-03-04"), T("2024-03-11"))]
    assert whole_weeks_before("2024-03-11", 0) == []


def test_temporal_split_test_window_is_fully_labelled() -> None:
    # as_of Wednesday 2024-03-13 15:00, delay 7 -> cutoff Wed 03-06 15:00 -> last labelled week ends Mon 03-04.
    s = temporal_split("2024-03-13 15:00", train_weeks=2, test_weeks=1, label_delay_days=7)
    assert s == TemporalSplit(T("2024-02-12"), T("2024-02-26"), T("2024-02-26"), T("2024-03-04"), 7)
    # Delay 2 -> cutoff Mon 03-11 15:00: the week ending 03-11 is labelled.
    s2 = temporal_split("2024-03-13 15:00", train_weeks=3, test_weeks=2, label_delay_days=2)
    assert (s2.train_start, s2.test_start, s2.test_end) == (T("2024-02-05"), T("2024-02-26"), T("2024-03-11"))


def test_temporal_split_sunday_weeks() -> None:
    s = temporal_split("2024-03-13 15:00", train_weeks=1, test_weeks=1, label_delay_days=0, week_start="sunday")
    assert (s.train_start, s.test_start, s.test_end) == (T("2024-02-25"), T("2024-03-03"), T("2024-03-10"))


def test_temporal_split_to_dict() -> None:
    s = temporal_split("2024-03-13", 2, 1, 7)
    assert s.to_dict() == {
        "train_start": "2024-02-12T00:00:00",
        "train_end": "2024-02-26T00:00:00",
        "test_start": "2024-02-26T00:00:00",
        "test_end": "2024-03-04T00:00:00",
        "label_delay_days": 7,
    }


@pytest.mark.parametrize(("train", "test", "delay"), [(0, 1, 7), (1, 0, 7), (1, 1, -1)])
def test_temporal_split_rejects_bad_windows(train: int, test: int, delay: int) -> None:
    with pytest.raises(InputError):
        temporal_split("2024-03-13", train, test, delay)


def test_split_windows_must_be_ordered() -> None:
    with pytest.raises(InputError, match="ordered"):
        TemporalSplit(T("2024-02-26"), T("2024-02-12"), T("2024-02-26"), T("2024-03-04"))


def test_apply_split_rows_and_entity_embargo() -> None:
    split = TemporalSplit(T("2024-02-12"), T("2024-02-26"), T("2024-02-26"), T("2024-03-04"), label_delay_days=7)
    frame = pd.DataFrame(
        {
            "request_id": ["a1", "a2", "a3", "b1", "b2", "c1", "c2", "d1", "d2", "e1"],
            "user_id": ["A", "A", "A", "B", "B", "C", "C", "D", "D", "E"],
            "event_time": pd.to_datetime(
                [
                    "2024-02-13 00:00",  # A train, label settled 02-20 <= test start -> kept
                    "2024-02-20 00:00",  # A train, label settles 02-27 > test start and A is tested -> dropped
                    "2024-02-27 00:00",  # A test
                    "2024-02-20 00:00",  # B train, B not in test -> kept even though its label is late
                    "2024-02-25 23:59",  # B train -> kept
                    "2024-02-11 23:59",  # C before the training window -> dropped
                    "2024-03-04 00:00",  # C at test_end (exclusive) -> dropped
                    "2024-02-19 00:00",  # D train, settles exactly at test start -> kept
                    "2024-02-28 00:00",  # D test
                    "2024-02-26 00:00",  # E exactly at test start -> test
                ]
            ),
            "x": range(10),
        }
    )
    train, test = apply_split(frame, split, CONTRACT)
    assert train["request_id"].tolist() == ["a1", "b1", "b2", "d1"]
    assert test["request_id"].tolist() == ["a3", "d2", "e1"]
    # Without the embargo, A's late training row stays (time rule only).
    train0, _ = apply_split(
        frame,
        TemporalSplit(*[getattr(split, f) for f in ("train_start", "train_end", "test_start", "test_end")]),
        CONTRACT,
    )
    assert train0["request_id"].tolist() == ["a1", "a2", "b1", "b2", "d1"]


def test_apply_split_names_missing_column() -> None:
    split = temporal_split("2024-03-13", 2, 1, 7)
    with pytest.raises(InputError, match="'event_time' is missing"):
        apply_split(pd.DataFrame({"user_id": [1]}), split, CONTRACT)


def test_backtest_folds_precede_current_test_window() -> None:
    folds = backtest_folds("2024-03-13 15:00", train_weeks=2, test_weeks=1, label_delay_days=7, k=3)
    assert [(f.test_start, f.test_end) for f in folds] == [
        (T("2024-02-05"), T("2024-02-12")),
        (T("2024-02-12"), T("2024-02-19")),
        (T("2024-02-19"), T("2024-02-26")),
    ]
    assert [f.train_start for f in folds] == [T("2024-01-22"), T("2024-01-29"), T("2024-02-05")]
    assert all(f.label_delay_days == 7 for f in folds)


def test_backtest_folds_include_current_and_multiweek_shift() -> None:
    current = temporal_split("2024-03-13", 2, 2, 7)
    folds = backtest_folds("2024-03-13", 2, 2, 7, k=2, include_current=True)
    assert folds[-1] == current
    assert folds[0].test_end == current.test_start and folds[0].test_start == current.test_start - pd.Timedelta(weeks=2)
    assert backtest_folds("2024-03-13", 2, 1, 7, k=0) == []


def test_apply_split_ignores_the_index() -> None:
    split = TemporalSplit(T("2024-02-12"), T("2024-02-26"), T("2024-02-26"), T("2024-03-04"), label_delay_days=7)
    frame = pd.DataFrame(
        {
            "request_id": ["a1", "a2", "b1"],
            "user_id": ["A", "A", "B"],
            "event_time": pd.to_datetime(["2024-02-20", "2024-02-27", "2024-02-20"]),
            "x": [1, 2, 3],
        },
        index=[7, 7, 7],
    )
    train, test = apply_split(frame, split, CONTRACT)
    assert train["request_id"].tolist() == ["b1"] and test["request_id"].tolist() == ["a2"]
    assert list(train.index) == [0]
