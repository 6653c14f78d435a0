"""Training data chosen by evidence: candidate windows compared on the same recent backtest folds."""

from __future__ import annotations

import pandas as pd
import pytest

from driftline import pipeline, weekly
from driftline.settings import Settings
from driftline.simulate import simulate
from driftline.store import Store

START = pd.Timestamp("2026-01-05")
pytestmark = pytest.mark.slow


def _window(tmp_path, scenarios: str, as_of_week: int, **windows):
    sim = simulate(weeks=as_of_week, users=1500, scenarios=scenarios, seed=4, start=START.date())
    s = Settings(
        home=tmp_path / "home",
        windows={"train_weeks": 2, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2, **windows},
        training={"estimator_params": {"max_iter": 40}, "min_train_rows": 50},
    )
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    week = pipeline.Week.of(START + pd.Timedelta(weeks=as_of_week, hours=3), s.windows)
    return weekly.load_window(store, sim.contract, s, week), sim.contract, s


def test_every_candidate_is_scored_on_the_same_folds_and_the_best_is_chosen(tmp_path):
    window, contract, s = _window(tmp_path, "stable", 12, candidate_train_weeks=[6])
    bt = weekly.run_backtest(window, contract, s)
    assert set(bt["windows"]) == {"2", "6"}
    means = {int(k): v["mean"] for k, v in bt["windows"].items()}
    assert bt["chosen_train_weeks"] == max(means, key=lambda k: (means[k], k == 2))
    assert bt["mean"] == means[2]  # the configured window's summary stays at the top level
    # Same test weeks for every option: only the training start differs.
    folds = [f["test_start"] for f in bt["folds"]]
    assert len(folds) == 2 and folds == sorted(folds)


def test_the_chosen_window_is_what_the_candidate_trains_on(tmp_path):
    window, contract, s = _window(tmp_path, "stable", 12, candidate_train_weeks=[6])
    import numpy as np

    data = weekly.build_datasets(window, contract, s, np.random.default_rng(0))
    six = weekly.training_frame(data, window, contract, 6)
    two = weekly.training_frame(data, window, contract, 2)
    assert two is data.train and len(six) > 2 * len(two)
    cand = weekly.train_candidate(data, contract, s, window, {"chosen_train_weeks": 6})
    assert cand.training_window == {"train_weeks": 6, "rows": len(six)}
    assert weekly.train_candidate(data, contract, s, window, None).training_window["train_weeks"] == 2
