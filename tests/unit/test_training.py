"""Training pipeline: shared feature normalisation, unknown categories, weights, estimator registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import OrdinalEncoder

from driftline.contract import parse_contract
from driftline.errors import ConfigError, DriftlineError, InputError
from driftline.settings import TrainingSettings
from driftline.training import (
    ESTIMATORS,
    ContractFeatures,
    build_pipeline,
    features_frame,
    sample_weights,
    score,
    train,
)

CONTRACT = parse_contract(
    {
        "entity_id": "user_id",
        "request_id": "request_id",
        "timestamp": "event_time",
        "target": {"name": "churned", "positive": 1},
        "segment": "country",
        "features": {
            "tenure": {"type": "numeric"},
            "country": {"type": "categorical"},
            "auto_renew": {"type": "boolean"},
            "plan": {"type": "categorical"},
        },
    }
)
FAST = {
    "hist_gradient_boosting": {"max_iter": 10},
    "logistic_regression": {"max_iter": 200},
    "random_forest": {"n_estimators": 10},
}


def _frame(n: int = 300, seed: int = 0, positive_share: float | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.exponential(100, n)
    country = rng.choice(["US", "GB", "DE"], n).astype(object)
    plan = rng.choice(["free", "pro"], n).astype(object)
    auto = rng.choice([True, False], n)
    logit = -1.0 + 1.5 * (plan == "free") - 0.01 * tenure + 0.5 * (country == "US")
    if positive_share is not None:
        logit = logit + np.log(positive_share / (1 - positive_share)) - logit.mean()
    y = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "user_id": np.arange(n),
            "event_time": pd.Timestamp("2024-03-04"),
            "tenure": tenure,
            "country": country,
            "auto_renew": auto,
            "plan": plan,
            "churned": y,
        }
    )


def _settings(estimator: str = "hist_gradient_boosting", **kw: object) -> TrainingSettings:
    return TrainingSettings(estimator=estimator, estimator_params=FAST[estimator], **kw)


# -- features_frame -------------------------------------------------------------------------
def test_features_frame_selects_orders_and_normalises() -> None:
    raw = pd.DataFrame(
        {
            "plan": ["pro", None, 3.0],
            "extra": [1, 2, 3],
            "auto_renew": ["true", 0, None],
            "country": pd.Series(["US", np.nan, "GB"], dtype="str", index=[10, 11, 12]),
            "tenure": ["1.5", "x", 2],
        },
        index=[10, 11, 12],
    )
    out = features_frame(raw, CONTRACT)
    assert list(out.columns) == ["tenure", "country", "auto_renew", "plan"]
    assert list(out.index) == [10, 11, 12]
    assert out.dtypes.astype(str).tolist() == ["float64", "object", "float64", "object"]
    np.testing.assert_array_equal(out["tenure"].to_numpy(), [1.5, np.nan, 2.0])
    np.testing.assert_array_equal(out["auto_renew"].to_numpy(), [1.0, 0.0, np.nan])
    assert out["country"].tolist()[0] == "US" and pd.isna(out["country"].tolist()[1])
    assert out["plan"].tolist()[0] == "pro" and out["plan"].tolist()[2] == "3"
    assert all(isinstance(v, str) for v in out["plan"].dropna())


def test_features_frame_names_missing_features() -> None:
    with pytest.raises(InputError, match=r"features missing from the frame: \['plan'\]"):
        features_frame(_frame().drop(columns="plan"), CONTRACT)


# -- pipeline structure ---------------------------------------------------------------------
def test_hgb_pipeline_structure_and_unknown_handling() -> None:
    pipe = build_pipeline(CONTRACT, seed=3)
    assert [name for name, _ in pipe.steps] == ["features", "prep", "model"]
    assert isinstance(pipe.named_steps["features"], ContractFeatures)
    model = pipe.named_steps["model"]
    assert isinstance(model, HistGradientBoostingClassifier)
    assert model.random_state == 3 and model.categorical_features == [0, 1]  # categoricals come first
    enc = pipe.named_steps["prep"].transformers[0][1]
    assert isinstance(enc, OrdinalEncoder)
    assert (enc.handle_unknown, enc.unknown_value, enc.encoded_missing_value) == ("use_encoded_value", -1, -2)


def test_class_balance_flag_sets_class_weight() -> None:
    for name in ESTIMATORS:
        assert build_pipeline(CONTRACT, name, class_balance=True).named_steps["model"].class_weight == "balanced"
        assert build_pipeline(CONTRACT, name).named_steps["model"].class_weight is None


def test_unknown_estimator_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        build_pipeline(CONTRACT, "xgboost")
    assert isinstance(err.value, DriftlineError)
    assert str(err.value) == (
        "unknown estimator 'xgboost'; valid names: hist_gradient_boosting, logistic_regression, random_forest"
    )


def test_bad_estimator_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid parameters"):
        build_pipeline(CONTRACT, "logistic_regression", params={"max_depth": 3})


# -- scoring robustness ----------------------------------------------------------------------
@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_unseen_categories_and_nan_at_score_time(estimator: str) -> None:
    model = train(_frame(), CONTRACT, _settings(estimator))
    serving = pd.DataFrame(
        {
            "tenure": [np.nan, 10.0, 50.0, 5.0],
            "country": ["ZZ", None, "US", "United States"],
            "auto_renew": [None, "yes", False, True],
            "plan": ["platinum", "free", None, "pro"],
        }
    )
    p = score(model.pipeline, serving, CONTRACT)
    assert p.shape == (4,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    # The pipeline applies the same normalisation itself: raw frame in, same scores out.
    np.testing.assert_allclose(model.pipeline.predict_proba(serving)[:, 1], p)


def test_score_of_empty_frame() -> None:
    model = train(_frame(), CONTRACT, _settings())
    assert score(model.pipeline, _frame().iloc[:0], CONTRACT).shape == (0,)


def test_same_seed_same_model_scores() -> None:
    settings = _settings("random_forest")
    a = score(train(_frame(), CONTRACT, settings, rng_seed=5).pipeline, _frame(seed=1), CONTRACT)
    b = score(train(_frame(), CONTRACT, settings, rng_seed=5).pipeline, _frame(seed=1), CONTRACT)
    c = score(train(_frame(), CONTRACT, settings, rng_seed=6).pipeline, _frame(seed=1), CONTRACT)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# -- weights -------------------------------------------------------------------------------------
def test_sample_weights_hand_worked() -> None:
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(sample_weights(y), [1, 1, 1, 1])
    # balanced: n / (2 * n_c) -> 4/6 for class 0, 4/2 for class 1
    np.testing.assert_allclose(sample_weights(y, class_balance=True), [2 / 3, 2 / 3, 2 / 3, 2.0])
    fb = pd.Series([True, "no", None, 1])
    np.testing.assert_allclose(sample_weights(y, feedback=fb, feedback_weight=3.0), [3, 1, 1, 3])
    np.testing.assert_allclose(
        sample_weights(y, class_balance=True, feedback=fb, feedback_weight=3.0), [2.0, 2 / 3, 2 / 3, 6.0]
    )


def test_class_balance_changes_the_fitted_model() -> None:
    data = _frame(n=600, positive_share=0.1)
    plain = train(data, CONTRACT, _settings("logistic_regression"))
    balanced = train(data, CONTRACT, _settings("logistic_regression", class_balance=True))
    p_plain, p_bal = score(plain.pipeline, data, CONTRACT), score(balanced.pipeline, data, CONTRACT)
    # Balanced weights up-weight the rare positives, pushing scores towards 0.5 on average.
    assert p_bal.mean() > p_plain.mean() + 0.2
    assert abs(p_plain.mean() - data["churned"].mean()) < 0.02
    assert balanced.params["class_balance"] is True


def test_feedback_rows_are_weighted() -> None:
    data = _frame(n=400)
    flagged = data.assign(feedback=(data["churned"] == 1))
    base = train(data, CONTRACT, _settings("logistic_regression"))
    heavy = train(flagged, CONTRACT, _settings("logistic_regression", feedback_weight=5.0))
    assert heavy.params["n_feedback"] == int(data["churned"].sum())
    assert score(heavy.pipeline, data, CONTRACT).mean() > score(base.pipeline, data, CONTRACT).mean()


# -- train() contract -----------------------------------------------------------------------------
def test_train_reports_facts() -> None:
    data = _frame()
    m = train(data, CONTRACT, _settings(), rng_seed=9)
    assert m.feature_columns == ["tenure", "country", "auto_renew", "plan"]
    assert m.n_train == 300 and m.positive_rate == pytest.approx(data["churned"].mean())
    assert m.params == {
        "estimator": "hist_gradient_boosting",
        "seed": 9,
        "class_balance": False,
        "feedback_weight": 1.0,
        "n_feedback": 0,
        "empty_features_dropped": "",
        "estimator.max_iter": 10,
    }
    assert m.pipeline.named_steps["model"].max_iter == 10


def test_train_refuses_single_class_and_empty_data() -> None:
    with pytest.raises(DriftlineError, match="only class 0 \\(300 rows\\)"):
        train(_frame().assign(churned=0), CONTRACT, _settings())
    with pytest.raises(DriftlineError, match="empty"):
        train(_frame().iloc[:0], CONTRACT, _settings())
    with pytest.raises(InputError, match="no target column"):
        train(_frame().drop(columns="churned"), CONTRACT, _settings())


def test_string_target_mapped_by_positive_label() -> None:
    c = CONTRACT.model_copy(update={"target": CONTRACT.target.model_copy(update={"positive": "yes"})})
    data = _frame()
    words = data.assign(churned=np.where(data["churned"] == 1, "yes", "no"))
    assert train(words, c, _settings()).positive_rate == pytest.approx(data["churned"].mean())


def test_hgb_scores_unknown_like_missing() -> None:
    model = train(_frame(), CONTRACT, _settings())
    rows = pd.DataFrame({"tenure": [10.0, 10.0], "country": ["ZZ", None], "auto_renew": [1, 1], "plan": ["free"] * 2})
    p = score(model.pipeline, rows, CONTRACT)
    assert p[0] == p[1]  # both codes are negative: HGB's missing-value branch


def test_hgb_handles_more_categories_than_bins() -> None:
    data = _frame(n=600)
    data["country"] = [f"c{i}" for i in range(600)]  # 600 distinct values > 255 bins
    model = train(data, CONTRACT, _settings())
    enc = model.pipeline.named_steps["prep"].named_transformers_["categorical"]
    assert enc.max_categories == 255
    assert np.isfinite(score(model.pipeline, data.head(3), CONTRACT)).all()


def test_pipeline_pickles_and_clones() -> None:
    import pickle

    from sklearn.base import clone

    model = train(_frame(), CONTRACT, _settings())
    again = pickle.loads(pickle.dumps(model.pipeline))
    np.testing.assert_array_equal(
        score(again, _frame(seed=2), CONTRACT), score(model.pipeline, _frame(seed=2), CONTRACT)
    )
    assert clone(model.pipeline).named_steps["features"].features == model.pipeline.named_steps["features"].features


def test_a_feature_with_no_values_is_left_out_of_training(tiny_contract):
    import numpy as np
    import pandas as pd

    from driftline.settings import TrainingSettings
    from driftline.training import score, train

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "country": rng.choice(["US", "GB"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 900, n).astype(float),
            "score_hint": np.nan,  # never filled in this window
            "auto_renew": rng.random(n) < 0.5,
            "churned": (rng.random(n) < 0.3).astype(int),
        }
    )
    model = train(frame, tiny_contract, TrainingSettings(estimator_params={"max_iter": 10}))
    assert model.params["empty_features_dropped"] == "score_hint"
    assert "score_hint" not in model.feature_columns
    later = frame.assign(score_hint=rng.random(n))  # and serving may send it again
    assert score(model.pipeline, later, tiny_contract).shape == (n,)
