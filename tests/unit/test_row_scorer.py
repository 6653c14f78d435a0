"""The serving row scorer gives exactly the pipeline's scores, and falls back where it cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline import training
from driftline.settings import TrainingSettings
from driftline.simulate import simulate


@pytest.fixture(scope="module")
def world():
    sim = simulate(weeks=2, users=600, seed=3)
    c = sim.contract.with_aliases({"country": {"United States": "US"}})
    labelled = sim.traffic.merge(sim.outcomes[[c.request_id, c.target.name]], on=c.request_id)
    return c, labelled


def _rows(c, labelled: pd.DataFrame) -> list[dict]:
    """Stored rows plus awkward ones: nulls, unknown categories, an alias, booleans as text."""
    rows = labelled[list(c.feature_names)].head(200).astype(object).to_dict("records")
    rows += training.probe_rows(c, np.random.default_rng(5), n=50)
    rows.append(dict(rows[0], country="United States", plan="never-seen", auto_renew=None))
    rows.append(dict(rows[1], tenure_days=None, device=None, auto_renew="yes"))
    return rows


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest"])
def test_ordinal_pipelines_score_rows_directly_and_exactly(world, estimator):
    c, labelled = world
    model = training.train(labelled, c, TrainingSettings(estimator=estimator, seed=1))
    scorer, path = training.row_scorer(model.pipeline, c)
    assert path == "direct"
    rows = _rows(c, labelled)
    frame = pd.DataFrame.from_records(rows, columns=list(c.feature_names))
    assert np.array_equal(scorer(rows), training.score(model.pipeline, frame, c))
    assert scorer([]).shape == (0,)
    # gradient boosting skips its own per-call re-encoding of the codes (the trees are summed directly)
    direct = isinstance(training._fast_scorer(model.pipeline, c).predict, training._HGBDirect)
    assert direct == (estimator == "hist_gradient_boosting")


def test_infrequent_categories_are_coded_as_the_encoder_codes_them(world):
    c, labelled = world
    data = labelled.copy()
    data["country"] = [f"c{i % 40}" if i % 3 else "FR" for i in range(len(data))]  # 40 values, 8 bins
    model = training.train(data, c, TrainingSettings(seed=1, estimator_params={"max_bins": 8}))
    scorer, path = training.row_scorer(model.pipeline, c)
    rows = data[list(c.feature_names)].head(300).astype(object).to_dict("records")
    frame = pd.DataFrame.from_records(rows, columns=list(c.feature_names))
    assert path == "direct" and np.array_equal(scorer(rows), training.score(model.pipeline, frame, c))


def test_other_pipelines_score_through_a_frame_with_the_same_numbers(world):
    c, labelled = world
    model = training.train(labelled, c, TrainingSettings(estimator="logistic_regression"))
    scorer, path = training.row_scorer(model.pipeline, c)
    rows = _rows(c, labelled)
    frame = pd.DataFrame.from_records(rows, columns=list(c.feature_names))
    assert path == "frame" and np.array_equal(scorer(rows), training.score(model.pipeline, frame, c))


def test_a_direct_path_that_disagrees_on_the_probe_is_not_used(world, monkeypatch):
    c, labelled = world
    model = training.train(labelled, c, TrainingSettings(seed=1))
    real = training._fast_scorer

    def off_by_a_category(pipeline, contract):
        fast = real(pipeline, contract)
        fast.plan[0][2].clear()  # every country now reads as unknown on the direct path only
        return fast

    monkeypatch.setattr(training, "_fast_scorer", off_by_a_category)
    scorer, path = training.row_scorer(model.pipeline, c)
    rows = _rows(c, labelled)
    frame = pd.DataFrame.from_records(rows, columns=list(c.feature_names))
    assert path == "frame" and np.array_equal(scorer(rows), training.score(model.pipeline, frame, c))
