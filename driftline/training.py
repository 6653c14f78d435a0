"""Training candidates: a scikit-learn Pipeline that carries its own preprocessing.

The pipeline's first step, :class:`ContractFeatures`, selects the contract's features in
contract order and normalises their dtypes. :func:`features_frame` runs the very same code, so
training, scoring here and a served MLflow model all see identical inputs — that is the
training–serving skew defence. Unknown categories never raise at scoring time: each estimator's
encoder is told explicitly what to do with them (see :data:`ESTIMATORS`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from driftline.contract import Contract
from driftline.errors import ConfigError, DriftlineError, InputError
from driftline.labels import binary_target
from driftline.settings import TrainingSettings
from driftline.values import bool_value, category_value

FEEDBACK_COLUMN = "feedback"
UNKNOWN_CODE = -1
MISSING_CODE = -2


# -- feature normalisation (shared by training and serving) ---------------------------
def _as_bool_number(value: Any) -> float:
    """1.0 / 0.0 for the boolean spellings driftline.values accepts, NaN for anything else."""
    b = bool_value(value)
    return np.nan if b is None else float(b)


def normalise_features(frame: pd.DataFrame, features: list[tuple[str, str]]) -> pd.DataFrame:
    """Select ``features`` (name, type) in order and normalise dtypes; index is kept.

    numeric -> float64 (unparseable -> NaN); categorical -> object column of ``str`` with NaN for
    missing (an integral float such as 3.0 becomes ``"3"``); boolean -> float64 1.0/0.0/NaN
    (true/false, 1/0, yes/no in any case; anything else -> NaN).
    """
    missing = [n for n, _ in features if n not in frame.columns]
    if missing:
        raise InputError(f"features missing from the frame: {missing}")
    out: dict[str, pd.Series] = {}
    for name, kind in features:
        s = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64")
            continue
        values = s.astype(object)
        present = values.notna()
        uniques = pd.unique(values[present].to_numpy(dtype=object))
        convert = category_value if kind == "categorical" else _as_bool_number
        lookup = {u: convert(u) for u in uniques}
        mapped = values.map(lookup)
        if kind == "categorical":
            out[name] = pd.Series(mapped.to_numpy(dtype=object), index=frame.index, dtype=object)
        else:
            out[name] = pd.to_numeric(mapped, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def _feature_spec(contract: Contract) -> tuple[tuple[str, str], ...]:
    return tuple((name, f.type) for name, f in contract.features.items())


def features_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Exactly the contract's features, in contract order, with normalised dtypes.

    Used at training and at scoring time (and inside the pipeline as :class:`ContractFeatures`);
    see :func:`normalise_features` for the rules.
    """
    return normalise_features(contract.apply_aliases(frame), list(_feature_spec(contract)))


class ContractFeatures(TransformerMixin, BaseEstimator):
    """Pipeline step: the contract's features in order with normalised dtypes (stateless).

    ``features`` is a tuple of (name, type) pairs, plain data so the pickled pipeline does not
    depend on the Contract class.
    """

    def __init__(self, features: tuple[tuple[str, str], ...] = ()) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, y: Any = None) -> ContractFeatures:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return normalise_features(X, list(self.features))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([n for n, _ in self.features], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True


# -- estimator registry -------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorSpec:
    """How to build one estimator and how its categorical inputs are encoded."""

    name: str
    encoding: Literal["ordinal", "onehot"]
    make: Callable[[int, bool, dict[str, Any], int], ClassifierMixin]
    description: str


def _make_hgb(seed: int, class_balance: bool, params: dict[str, Any], n_categorical: int) -> ClassifierMixin:
    kwargs: dict[str, Any] = {"random_state": seed, "class_weight": "balanced" if class_balance else None}
    kwargs.update(params)
    kwargs["categorical_features"] = list(range(n_categorical)) or None
    return HistGradientBoostingClassifier(**kwargs)


def _make_lr(seed: int, class_balance: bool, params: dict[str, Any], n_categorical: int) -> ClassifierMixin:
    kwargs: dict[str, Any] = {
        "random_state": seed,
        "max_iter": 1000,
        "class_weight": "balanced" if class_balance else None,
    }
    kwargs.update(params)
    return LogisticRegression(**kwargs)


def _make_rf(seed: int, class_balance: bool, params: dict[str, Any], n_categorical: int) -> ClassifierMixin:
    kwargs: dict[str, Any] = {
        "random_state": seed,
        "n_estimators": 100,
        "min_samples_leaf": 5,
        "class_weight": "balanced" if class_balance else None,
    }
    kwargs.update(params)
    return RandomForestClassifier(**kwargs)


ESTIMATORS: dict[str, EstimatorSpec] = {
    "hist_gradient_boosting": EstimatorSpec(
        "hist_gradient_boosting",
        "ordinal",
        _make_hgb,
        "HistGradientBoostingClassifier; categories ordinal-coded (at most max_bins per feature, the rarest "
        "grouped as infrequent) and declared categorical. Unknown (-1) and missing (-2) codes are negative, "
        "which HGB routes down its missing-value branch.",
    ),
    "logistic_regression": EstimatorSpec(
        "logistic_regression",
        "onehot",
        _make_lr,
        "LogisticRegression on one-hot categories (missing is its own column, unknown -> all zeros) and "
        "median-imputed, standardised numbers with missing-indicator columns.",
    ),
    "random_forest": EstimatorSpec(
        "random_forest",
        "ordinal",
        _make_rf,
        "RandomForestClassifier; categories ordinal-coded with unknown -1 and missing -2, numbers passed "
        "through (scikit-learn forests split on NaN natively).",
    ),
}


def estimator_spec(name: str) -> EstimatorSpec:
    """The registered estimator ``name``; ConfigError listing the valid names otherwise."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ConfigError(f"unknown estimator {name!r}; valid names: {', '.join(sorted(ESTIMATORS))}") from None


def build_pipeline(
    contract: Contract,
    estimator: str = "hist_gradient_boosting",
    seed: int = 0,
    class_balance: bool = False,
    params: Mapping[str, Any] | None = None,
) -> Pipeline:
    """An unfitted Pipeline: ContractFeatures -> ColumnTransformer -> estimator.

    The ColumnTransformer puts categorical columns first (so HGB's ``categorical_features`` are
    the leading indices), then numeric and boolean columns. ``class_balance`` sets the
    estimator's ``class_weight="balanced"``; :func:`train` leaves it off and passes explicit
    sample weights instead. ``params`` override the estimator's keyword arguments.
    """
    spec = estimator_spec(estimator)
    params = dict(params or {})
    cats = contract.categorical
    nums = contract.numeric + contract.boolean
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.encoding == "ordinal":
        if cats:
            max_categories = int(params.get("max_bins", 255)) if spec.name == "hist_gradient_boosting" else None
            enc = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=UNKNOWN_CODE,
                encoded_missing_value=MISSING_CODE,
                max_categories=max_categories,
                dtype=np.float64,
            )
            transformers.append(("categorical", enc, cats))
        if nums:
            transformers.append(("numeric", "passthrough", nums))
    else:
        if cats:
            transformers.append(
                ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64), cats)
            )
        if nums:
            numeric = Pipeline(
                [
                    ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
            )
            transformers.append(("numeric", numeric, nums))
    prep = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)
    try:
        model = spec.make(seed, class_balance, params, len(cats))
    except TypeError as e:
        raise ConfigError(f"estimator {estimator!r}: invalid parameters {sorted(params)} ({e})") from None
    return Pipeline([("features", ContractFeatures(_feature_spec(contract))), ("prep", prep), ("model", model)])


# -- training and scoring ---------------------------------------------------------------
@dataclass
class TrainedModel:
    """A fitted pipeline and the facts about its training run that get logged with it."""

    pipeline: Pipeline
    feature_columns: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    positive_rate: float = float("nan")


def sample_weights(
    y: np.ndarray,
    class_balance: bool = False,
    feedback: pd.Series | np.ndarray | None = None,
    feedback_weight: float = 1.0,
) -> np.ndarray:
    """Per-row training weights.

    Start at 1. With ``class_balance`` each row of class c gets ``n / (n_classes * n_c)``
    (scikit-learn's "balanced" rule). Rows whose ``feedback`` flag is true (1/true/yes) are
    then multiplied by ``feedback_weight``.
    """
    y = np.asarray(y)
    w = np.ones(len(y), dtype=np.float64)
    if class_balance and len(y):
        classes, counts = np.unique(y, return_counts=True)
        per_class = len(y) / (len(classes) * counts)
        w *= per_class[np.searchsorted(classes, y)]
    if feedback is not None:
        flags = pd.Series(np.asarray(feedback, dtype=object)).map(_as_bool_number).to_numpy() == 1.0
        w[flags] *= feedback_weight
    return w


def train(
    train_df: pd.DataFrame, contract: Contract, settings: TrainingSettings, rng_seed: int | None = None
) -> TrainedModel:
    """Fit a pipeline on labelled rows; ``rng_seed`` (default ``settings.seed``) seeds the estimator.

    Weights come from :func:`sample_weights` (class balance and the optional ``feedback``
    column). Raises DriftlineError when the data is empty or holds a single class.
    """
    target = contract.target.name
    if target not in train_df.columns:
        raise InputError(f"training data has no target column {target!r}")
    if len(train_df) == 0:
        raise DriftlineError("training data is empty: no labelled rows in the training window")
    y = binary_target(train_df[target], contract)
    classes = np.unique(y)
    if len(classes) < 2:
        raise DriftlineError(
            f"training data holds only class {int(classes[0])} ({len(y)} rows); both classes are needed"
        )
    feedback = train_df[FEEDBACK_COLUMN] if FEEDBACK_COLUMN in train_df.columns else None
    weights = sample_weights(y, settings.class_balance, feedback, settings.feedback_weight)
    seed = settings.seed if rng_seed is None else int(rng_seed)
    X = features_frame(train_df, contract)
    # A feature with no value at all in the window carries nothing to learn (and breaks HGB's
    # binning): train without it and record that; scoring ignores the column.
    empty = [n for n in contract.feature_names if X[n].isna().all()]
    if len(empty) == len(contract.features):
        raise DriftlineError(f"every feature is empty in the training window ({len(y)} rows)")
    fit_contract = contract
    if empty:
        kept = {n: f for n, f in contract.features.items() if n not in empty}
        fit_contract = contract.model_copy(update={"features": kept})
    pipeline = build_pipeline(
        fit_contract, settings.estimator, seed=seed, class_balance=False, params=settings.estimator_params
    )
    pipeline.fit(X, y, model__sample_weight=weights)
    n_feedback = 0 if feedback is None else int(np.count_nonzero(feedback.map(_as_bool_number) == 1.0))
    params: dict[str, Any] = {
        "estimator": settings.estimator,
        "seed": seed,
        "class_balance": settings.class_balance,
        "feedback_weight": settings.feedback_weight,
        "n_feedback": n_feedback,
        "empty_features_dropped": ",".join(empty),
        **{f"estimator.{k}": v for k, v in sorted(settings.estimator_params.items())},
    }
    return TrainedModel(
        pipeline=pipeline,
        feature_columns=fit_contract.feature_names,
        params=params,
        n_train=len(y),
        positive_rate=float(y.mean()),
    )


def score(pipeline: Pipeline, frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Probability of the positive class (label 1) for each row of ``frame``."""
    if len(frame) == 0:
        return np.empty(0, dtype=np.float64)
    proba = pipeline.predict_proba(features_frame(frame, contract))
    classes = list(pipeline.classes_)
    if 1 not in classes:
        raise DriftlineError(f"model was not trained on the positive class (classes {classes})")
    return proba[:, classes.index(1)].astype(np.float64)


# -- scoring checked rows without DataFrames (the serving path) -----------------------------
RowScorer = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
"""Scores of rows given as ``{feature: value}`` mappings (values as ingest stores them)."""


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _ordinal_codes(enc: OrdinalEncoder, columns: list[str]) -> list[dict[str, float]] | None:
    """Per column, the code ``enc`` gives each category it knows, computed by ``enc`` itself.

    The encoder is asked once for all its categories (so infrequent grouping and any other rule
    of its own is included); None when it would raise on unknown values instead of coding them.
    """
    if enc.handle_unknown != "use_encoded_value":
        return None
    known = [[c for c in cats if isinstance(c, str)] for cats in enc.categories_]
    size = max((len(k) for k in known), default=0)
    if size == 0:
        return [{} for _ in columns]
    grid = {
        col: [k[i] if i < len(k) else (k[0] if k else np.nan) for i in range(size)]
        for col, k in zip(columns, known, strict=True)
    }
    codes = enc.transform(pd.DataFrame(grid, dtype=object))
    return [{k[i]: float(codes[i, j]) for i in range(len(k))} for j, k in enumerate(known)]


class _FastScorer:
    """A fitted ContractFeatures -> ColumnTransformer(ordinal, passthrough) -> model pipeline, per row.

    The same arithmetic as the pipeline on a DataFrame (category text, aliases, the encoder's own
    codes, float numbers, 1.0/0.0 booleans) written out for plain values, so one record costs the
    model's predict and not a DataFrame round trip. :func:`row_scorer` only uses it after checking
    that it gives the pipeline's scores exactly.
    """

    def __init__(
        self,
        model: Any,
        plan: list[tuple[str, str, dict[str, float] | None, float, float]],
        aliases: dict[str, dict[str, str]],
        positive: int,
    ) -> None:
        self.model = model
        self.plan = plan
        self.aliases = aliases
        self.positive = positive
        self.predict: Callable[[np.ndarray], np.ndarray] = model.predict_proba
        if isinstance(model, HistGradientBoostingClassifier):
            with contextlib.suppress(AttributeError, TypeError, ValueError, KeyError, IndexError):
                self.predict = _HGBDirect(model, plan)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not rows:
            return np.empty(0, dtype=np.float64)
        x = np.empty((len(rows), len(self.plan)), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, (name, kind, codes, unknown, missing) in enumerate(self.plan):
                v = row.get(name)
                if _is_missing(v):
                    x[i, j] = missing if kind == "categorical" else np.nan
                elif kind == "numeric":
                    x[i, j] = float(v)
                elif kind == "boolean":
                    x[i, j] = _as_bool_number(v)
                else:
                    text = category_value(v)
                    alias = self.aliases.get(name)
                    if alias:
                        text = alias.get(text, text)
                    x[i, j] = codes.get(text, unknown)  # type: ignore[union-attr]
        return self.predict(x)[:, self.positive].astype(np.float64)


def _is_passthrough(trans: Any) -> bool:
    """``"passthrough"``, or the identity FunctionTransformer a fitted ColumnTransformer keeps in its place."""
    if isinstance(trans, str):
        return trans == "passthrough"
    return isinstance(trans, FunctionTransformer) and trans.func is None and trans.inverse_func is None


class _HGBDirect:
    """HistGradientBoosting's predict_proba on our codes without its internal re-encoding.

    A fitted HGB with categorical features keeps a ColumnTransformer that maps the codes it was
    given to its own bins on every call (most of a one-row predict). The codes our plan can
    produce are few and known, so that mapping is computed once here, by HGB's own transformer,
    and each call only sums the trees (as ``_raw_predict`` does). Private scikit-learn attributes
    are used; :func:`row_scorer` checks the result against the pipeline and falls back otherwise.
    """

    def __init__(self, model: Any, plan: list[tuple[str, str, dict[str, float] | None, float, float]]) -> None:
        pre = model._preprocessor
        if pre is None:
            raise AttributeError("no internal preprocessor")
        k = len(plan)
        cats = [j for j, (_n, kind, *_rest) in enumerate(plan) if kind == "categorical"]
        values = {j: sorted({*plan[j][2].values(), plan[j][3], plan[j][4]}) for j in cats}  # type: ignore[union-attr]
        rows = max((len(v) for v in values.values()), default=1)
        grid = np.zeros((rows, k), dtype=np.float64)
        for j, vals in values.items():
            grid[:, j] = [vals[min(i, len(vals) - 1)] for i in range(rows)]
        out = pre.transform(grid)
        # where each input column lands: the encoder's columns first, then the numerical ones
        mask = np.asarray(model.is_categorical_, dtype=bool)
        order = [*np.flatnonzero(mask), *np.flatnonzero(~mask)]
        self.position = np.empty(k, dtype=np.intp)
        self.position[order] = np.arange(k)
        self.codes = {
            j: {v: float(out[min(i, rows - 1), self.position[j]]) for i, v in enumerate(vals)}
            for j, vals in values.items()
        }
        self.cats = cats
        self.model = model
        self.bitsets, self.f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        self.predictors = model._predictors
        self.baseline = model._baseline_prediction
        self.trees = model.n_trees_per_iteration_

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.empty_like(x)
        z[:, self.position] = x
        for j in self.cats:
            m = self.codes[j]
            z[:, self.position[j]] = [m[v] for v in x[:, j]]
        raw = np.zeros((len(x), self.trees), dtype=self.baseline.dtype, order="F")
        raw += self.baseline
        for per_iteration in self.predictors:
            for t, predictor in enumerate(per_iteration):
                raw[:, t] += predictor.predict(z, self.bitsets, self.f_idx_map, 1)
        return self.model._loss.predict_proba(raw)


def _fast_scorer(pipeline: Any, contract: Contract) -> _FastScorer | None:
    """The per-row scorer for a pipeline :func:`build_pipeline` made with ordinal coding, else None."""
    steps = getattr(pipeline, "named_steps", None)
    if steps is None or list(steps) != ["features", "prep", "model"]:
        return None
    feats, prep, model = steps["features"], steps["prep"], steps["model"]
    if not isinstance(feats, ContractFeatures) or not isinstance(prep, ColumnTransformer):
        return None
    if hasattr(model, "feature_names_in_") or 1 not in list(getattr(model, "classes_", [])):
        return None
    kinds = dict(feats.features)
    plan: list[tuple[str, str, dict[str, float] | None, float, float]] = []
    for _name, trans, cols in prep.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if not all(isinstance(c, str) and c in kinds for c in cols):
            return None
        if _is_passthrough(trans):
            if any(kinds[c] == "categorical" for c in cols):
                return None
            plan.extend((c, kinds[c], None, np.nan, np.nan) for c in cols)
        elif isinstance(trans, OrdinalEncoder) and all(kinds[c] == "categorical" for c in cols):
            codes = _ordinal_codes(trans, list(cols))
            if codes is None:
                return None
            unknown, missing = float(trans.unknown_value), float(trans.encoded_missing_value)
            plan.extend((c, "categorical", m, unknown, missing) for c, m in zip(cols, codes, strict=True))
        else:
            return None
    aliases = {n: dict(f.aliases) for n, f in contract.features.items() if f.aliases}
    return _FastScorer(model, plan, aliases, list(model.classes_).index(1))


def probe_rows(contract: Contract, rng: np.random.Generator, n: int = 64) -> list[dict[str, Any]]:
    """Rows of plausible and awkward values for every feature: vocabulary, aliases, unknowns, nulls, range ends."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name, f in contract.features.items():
            if f.nullable and i % 7 == 3:
                row[name] = None
            elif f.type == "numeric":
                lo, hi = f.range if f.range else (-1e3, 1e3)
                row[name] = float([lo, hi, (lo + hi) / 2][i % 3] if i < 6 else rng.uniform(lo, hi))
            elif f.type == "boolean":
                row[name] = bool(rng.integers(2))
            else:
                choices = [*(f.vocabulary or []), *(f.aliases or {}), "__driftline_probe_unknown__"]
                row[name] = str(choices[int(rng.integers(len(choices)))])
        rows.append(row)
    return rows


def row_scorer(pipeline: Any, contract: Contract, probe: Sequence[Mapping[str, Any]] = ()) -> tuple[RowScorer, str]:
    """A scorer of checked rows for ``pipeline`` and which path it takes (``"direct"`` or ``"frame"``).

    ``direct`` skips the DataFrame (see :class:`_FastScorer`) and is used only when it returns
    exactly :func:`score`'s values on ``probe`` rows (default: :func:`probe_rows`, seeded);
    otherwise each call builds the frame and runs :func:`score` — the same numbers, slower.
    """
    names = list(contract.feature_names)

    def by_frame(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame.from_records([{n: r.get(n) for n in names} for r in rows], columns=names)
        return score(pipeline, frame, contract)

    fast = _fast_scorer(pipeline, contract)
    if fast is None:
        return by_frame, "frame"
    rows = list(probe) or probe_rows(contract, np.random.default_rng(0))
    try:
        same = np.array_equal(fast(rows), by_frame(rows))
    except (TypeError, ValueError, KeyError):
        same = False
    return (fast, "direct") if same else (by_frame, "frame")
