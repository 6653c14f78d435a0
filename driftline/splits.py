"""Temporal train/test splits in whole weeks, and rolling-origin backtest folds.

Every window is a half-open interval ``[start, end)`` of whole weeks; a week starts on Monday
00:00 UTC by default (``week_start="sunday"`` is the other choice). Whole weeks keep each
split's weekly cycle complete, so a Monday-heavy product is not compared with a Friday.

Leakage rule (what :func:`apply_split` guarantees, and what the property tests check):

1. Training rows have ``train_start <= event_time < test_start``; test rows have
   ``test_start <= event_time < test_end``. No training event is at or after ``test_start``,
   so train and test are disjoint in time (and therefore in request ids).
2. No entity's future in training: for an entity that appears in the test window, its training
   rows are kept only when their label was settled before the test window opened, that is
   ``event_time + label_delay_days <= test_start``. A later training row carries a label that
   describes what the entity did *during* the test window (e.g. that the user churned), which
   would leak the test answer. Entities absent from the test window keep all training rows.

All times are compared as tz-naive UTC; tz-aware inputs are converted to UTC first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError

WeekStart = Literal["monday", "sunday"]
_WEEK = pd.Timedelta(days=7)
_FIRST_WEEKDAY = {"monday": 0, "sunday": 6}


def to_utc_naive(ts: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A timestamp as tz-naive UTC (tz-aware values are converted, naive ones taken as UTC)."""
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError):
        raise InputError(f"not a valid timestamp: {ts!r}") from None
    if t is pd.NaT:
        raise InputError(f"not a valid timestamp: {ts!r}")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t


def utc_naive_series(values: pd.Series, column: str = "timestamp") -> pd.Series:
    """A column as tz-naive UTC ``datetime64``; raises InputError naming the column if it cannot be."""
    try:
        s = pd.to_datetime(values)
    except (ValueError, TypeError) as e:
        raise InputError(f"column {column!r}: cannot be read as timestamps ({e})") from None
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _floor_week(ts: datetime | str | pd.Timestamp, first: str) -> pd.Timestamp:
    if first not in _FIRST_WEEKDAY:
        raise InputError(f"week_start must be 'monday' or 'sunday', got {first!r}")
    t = to_utc_naive(ts).normalize()
    return t - pd.Timedelta(days=(t.weekday() - _FIRST_WEEKDAY[first]) % 7)


def week_start(ts: datetime | str | pd.Timestamp, week_start: WeekStart = "monday") -> pd.Timestamp:
    """Start (00:00 UTC) of the week that contains ``ts``; ``ts`` itself if it is a week start."""
    return _floor_week(ts, week_start)


def whole_weeks_before(
    as_of: datetime | str | pd.Timestamp, n: int, week_start: WeekStart = "monday"
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The ``n`` most recent whole weeks that end at or before ``as_of``, oldest first.

    Each item is ``(start, end)`` with ``end`` exclusive; the last ``end`` is the week start at
    or before ``as_of`` (a week still in progress at ``as_of`` is not whole and is left out).
    """
    if n < 0:
        raise InputError(f"number of weeks must be >= 0, got {n}")
    end = _floor_week(as_of, week_start)
    return [(end - (n - i) * _WEEK, end - (n - i - 1) * _WEEK) for i in range(n)]


@dataclass(frozen=True)
class TemporalSplit:
    """Train window ``[train_start, train_end)`` and test window ``[test_start, test_end)``.

    ``label_delay_days`` is the embargo applied to test entities' training rows (rule 2 in the
    module docstring); 0 disables it.
    """

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    label_delay_days: int = 0

    def __post_init__(self) -> None:
        if not (self.train_start <= self.train_end <= self.test_start <= self.test_end):
            raise InputError(
                "split windows must be ordered train_start <= train_end <= test_start <= test_end, "
                f"got {self.train_start}, {self.train_end}, {self.test_start}, {self.test_end}"
            )

    def to_dict(self) -> dict[str, str | int]:
        """ISO strings (and the delay) for tags, params and JSON reports."""
        return {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in asdict(self).items()}

    def shifted(self, weeks: int) -> TemporalSplit:
        """The same split moved ``weeks`` whole weeks earlier (positive) or later (negative)."""
        d = weeks * _WEEK
        return TemporalSplit(
            self.train_start - d, self.train_end - d, self.test_start - d, self.test_end - d, self.label_delay_days
        )


def temporal_split(
    as_of: datetime | str | pd.Timestamp,
    train_weeks: int,
    test_weeks: int,
    label_delay_days: int,
    week_start: WeekStart = "monday",
) -> TemporalSplit:
    """Test on the most recent whole weeks fully labelled at ``as_of``; train on the weeks before.

    A week is fully labelled when every event in it is at least ``label_delay_days`` old at
    ``as_of``, i.e. its end is at or before ``as_of - label_delay_days``. So ``test_end`` is the
    week start at or before that cutoff, ``test_start = test_end - test_weeks`` weeks and the
    training window is the ``train_weeks`` whole weeks ending at ``test_start``.
    """
    if train_weeks < 1 or test_weeks < 1:
        raise InputError(f"train_weeks and test_weeks must be >= 1, got {train_weeks} and {test_weeks}")
    if label_delay_days < 0:
        raise InputError(f"label_delay_days must be >= 0, got {label_delay_days}")
    cutoff = to_utc_naive(as_of) - pd.Timedelta(days=label_delay_days)
    test_end = _floor_week(cutoff, week_start)
    test_start = test_end - test_weeks * _WEEK
    train_start = test_start - train_weeks * _WEEK
    return TemporalSplit(train_start, test_start, test_start, test_end, label_delay_days)


def apply_split(frame: pd.DataFrame, split: TemporalSplit, contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut ``frame`` into (train, test) by the module's leakage rule; row order is kept.

    Rows outside both windows are dropped. Training rows of entities present in the test
    window are kept only if ``event_time + split.label_delay_days <= split.test_start``.
    """
    for col in (contract.timestamp, contract.entity_id):
        if col not in frame.columns:
            raise InputError(f"apply_split: column {col!r} is missing (have {list(frame.columns)})")
    t = utc_naive_series(frame[contract.timestamp], contract.timestamp).to_numpy()
    in_test = (t >= split.test_start) & (t < split.test_end)
    in_train = (t >= split.train_start) & (t < split.train_end) & (t < split.test_start)
    if split.label_delay_days > 0:
        entities = frame[contract.entity_id]
        tested = entities.isin(pd.unique(entities.to_numpy()[in_test])).to_numpy()
        settled_before_test = t + np.timedelta64(split.label_delay_days, "D") <= split.test_start
        in_train &= settled_before_test | ~tested
    return frame.loc[in_train].reset_index(drop=True), frame.loc[in_test].reset_index(drop=True)


def backtest_folds(
    as_of: datetime | str | pd.Timestamp,
    train_weeks: int,
    test_weeks: int,
    label_delay_days: int,
    k: int,
    week_start: WeekStart = "monday",
    include_current: bool = False,
) -> list[TemporalSplit]:
    """Rolling-origin folds: the ``k`` most recent splits before the current test window, oldest first.

    Fold ``i`` (1..k) is ``temporal_split(as_of, ...)`` moved back by ``i * test_weeks`` weeks, so
    fold test windows tile the weeks just before the current test window without overlapping.
    With ``include_current=True`` the current split itself is the last fold (shifts 0..k-1);
    by default it is left out so a candidate's test metric is judged against history it is not
    part of.
    """
    if k < 0:
        raise InputError(f"number of backtest folds must be >= 0, got {k}")
    current = temporal_split(as_of, train_weeks, test_weeks, label_delay_days, week_start)
    shifts = range(0, k) if include_current else range(1, k + 1)
    return [current.shifted(i * test_weeks) for i in reversed(shifts)]
