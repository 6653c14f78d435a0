"""Property tests: no leakage and whole-week alignment for any window settings."""

from __future__ import annotations

import itertools
from datetime import datetime

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.contract import parse_contract
from driftline.splits import apply_split, backtest_folds, temporal_split, week_start

CONTRACT = parse_contract(
    {
        "entity_id": "user_id",
        "request_id": "request_id",
        "timestamp": "event_time",
        "target": {"name": "churned"},
        "features": {"x": {"type": "numeric"}},
    }
)
WEEK = pd.Timedelta(days=7)

windows = st.fixed_dictionaries(
    {
        "as_of": st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2026, 12, 31)),
        "train_weeks": st.integers(1, 12),
        "test_weeks": st.integers(1, 4),
        "label_delay_days": st.integers(0, 21),
        "week_start": st.sampled_from(["monday", "sunday"]),
    }
)


def _aligned(ts: pd.Timestamp, first: str) -> bool:
    return week_start(ts, first) == ts  # type: ignore[arg-type]


def _frame(as_of: pd.Timestamp, seed: int, n: int, n_entities: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 26 * 7 * 24 * 3600, n)  # up to 26 weeks before as_of, to the second
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "user_id": rng.integers(0, n_entities, n),
            "event_time": as_of - pd.to_timedelta(offsets, unit="s"),
            "x": rng.normal(size=n),
        }
    )


@settings(max_examples=150, deadline=None)
@given(w=windows, k=st.integers(0, 4))
def test_split_and_folds_are_whole_week_aligned(w: dict, k: int) -> None:
    as_of = pd.Timestamp(w["as_of"])
    s = temporal_split(**w)
    first = w["week_start"]
    for t in (s.train_start, s.train_end, s.test_start, s.test_end):
        assert _aligned(t, first)
    assert s.train_end == s.test_start
    assert s.test_end - s.test_start == w["test_weeks"] * WEEK
    assert s.train_end - s.train_start == w["train_weeks"] * WEEK
    # The test window is fully labelled, and it is the latest such whole week run.
    cutoff = as_of - pd.Timedelta(days=w["label_delay_days"])
    assert s.test_end <= cutoff < s.test_end + WEEK

    folds = backtest_folds(**w, k=k)
    assert len(folds) == k
    for f in folds:
        assert all(_aligned(t, first) for t in (f.train_start, f.train_end, f.test_start, f.test_end))
        assert f.test_end - f.test_start == w["test_weeks"] * WEEK
        assert f.train_end == f.test_start
        assert f.test_end <= s.test_start
    # Ordered oldest first, test windows tiling back from the current test start without overlap.
    for earlier, later in itertools.pairwise(folds):
        assert earlier.test_end == later.test_start
    if folds:
        assert folds[-1].test_end == s.test_start


@settings(max_examples=100, deadline=None)
@given(w=windows, seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), n_entities=st.integers(1, 60))
def test_apply_split_has_no_leakage(w: dict, seed: int, n: int, n_entities: int) -> None:
    as_of = pd.Timestamp(w["as_of"])
    s = temporal_split(**w)
    frame = _frame(as_of, seed, n, n_entities)
    train, test = apply_split(frame, s, CONTRACT)
    # No training event at or after the test start; every row inside its own window.
    assert (train["event_time"] < s.test_start).all()
    assert (train["event_time"] >= s.train_start).all()
    assert ((test["event_time"] >= s.test_start) & (test["event_time"] < s.test_end)).all()
    # Disjoint.
    assert not set(train["request_id"]) & set(test["request_id"])
    # No entity's future in training: a tested entity's training labels settled before the test window.
    tested = set(test["user_id"])
    settle = train["event_time"] + pd.Timedelta(days=w["label_delay_days"])
    assert (settle[train["user_id"].isin(tested)] <= s.test_start).all()
    # Nothing that satisfies the rule is lost.
    in_test = (frame["event_time"] >= s.test_start) & (frame["event_time"] < s.test_end)
    in_train = (frame["event_time"] >= s.train_start) & (frame["event_time"] < s.test_start)
    allowed = in_train & (
        ~frame["user_id"].isin(tested)
        | (frame["event_time"] + pd.Timedelta(days=w["label_delay_days"]) <= s.test_start)
    )
    assert len(test) == int(in_test.sum())
    assert len(train) == int(allowed.sum())
