"""Join logged predictions with the outcomes that had arrived by ``as_of``.

Labels arrive days after a prediction. A prediction whose label cannot have arrived yet is
*unlabelled*, not negative: counting it as a negative would make every recent week look
healthier than it is. So a prediction is kept only when

* ``event_time <= as_of - label_delay_days`` (its label window has closed), and
* an outcome for its request id was observed at or before ``as_of`` (``observed_time <= as_of``).

Everything else is left out (and counted in :class:`LabelStats`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError
from driftline.splits import to_utc_naive, utc_naive_series

OBSERVED_TIME = "observed_time"


def canonical_label(value: Any) -> str | None:
    """A label value as a comparable string: ``True``, ``1``, ``1.0`` and ``"1"`` all become ``"1"``.

    Booleans map to ``"1"``/``"0"`` (as Python's ``True == 1``), integral numbers and numeric
    strings to their integer text, other strings are stripped and lower-cased; missing -> None.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return "1" if text == "true" else "0"
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isnan(number):
        return None
    return str(int(number)) if number.is_integer() else repr(number)


def positive_mask(values: pd.Series, positive: Any) -> pd.Series:
    """Boolean Series: which values equal the positive label (compared via :func:`canonical_label`)."""
    want = canonical_label(positive)
    uniques = pd.unique(values.to_numpy(dtype=object))
    lookup = {u: canonical_label(u) == want for u in uniques if canonical_label(u) is not None}
    return values.map(lookup).eq(True)


def binary_target(values: pd.Series, contract: Contract) -> np.ndarray:
    """The target as a 0/1 int64 array.

    A column holding only 0 and 1 (what :func:`driftline.labels.join_labels` returns) is taken
    as already binary; anything else is compared with ``contract.target.positive``.
    Raises InputError on missing labels.
    """
    if values.isna().any():
        raise InputError(f"target {contract.target.name!r} has {int(values.isna().sum())} missing value(s)")
    if pd.api.types.is_bool_dtype(values) or (
        pd.api.types.is_numeric_dtype(values) and set(pd.unique(values)).issubset({0, 1})
    ):
        return values.astype(np.int64).to_numpy()
    return positive_mask(values, contract.target.positive).astype(np.int64).to_numpy()


@dataclass(frozen=True)
class LabelStats:
    """How many predictions were kept and why the others were not."""

    cutoff: str
    n_predictions: int
    n_too_recent: int
    n_unlabelled: int
    n_labelled: int
    n_positive: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing} (have {list(frame.columns)})")


def label_cutoff(as_of: datetime | str | pd.Timestamp, label_delay_days: int) -> pd.Timestamp:
    """Latest event time whose label window has closed at ``as_of``."""
    if label_delay_days < 0:
        raise InputError(f"label_delay_days must be >= 0, got {label_delay_days}")
    return to_utc_naive(as_of) - pd.Timedelta(days=label_delay_days)


def join_labels_with_stats(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    contract: Contract,
    as_of: datetime | str | pd.Timestamp,
    label_delay_days: int,
) -> tuple[pd.DataFrame, LabelStats]:
    """:func:`join_labels` plus the counts of what was left out and why."""
    rid, eid, ts, target = contract.request_id, contract.entity_id, contract.timestamp, contract.target.name
    _require(predictions, [rid, eid, ts], "predictions")
    _require(outcomes, [rid, eid, target, OBSERVED_TIME], "outcomes")
    cutoff = label_cutoff(as_of, label_delay_days)
    as_of_t = to_utc_naive(as_of)

    event_time = utc_naive_series(predictions[ts], ts)
    closed = (event_time <= cutoff).to_numpy()
    preds = predictions.loc[closed].drop(columns=[target], errors="ignore")

    observed = utc_naive_series(outcomes[OBSERVED_TIME], OBSERVED_TIME)
    keep = (observed <= as_of_t).to_numpy() & outcomes[target].notna().to_numpy()
    arrived = outcomes.loc[keep, [rid, eid, target]].assign(_observed=observed.to_numpy()[keep])
    # A corrected outcome supersedes an earlier one: keep the latest observed per request.
    arrived = arrived.sort_values("_observed", kind="stable").drop_duplicates(rid, keep="last")

    joined = preds.merge(arrived[[rid, eid, target]], on=rid, how="inner", suffixes=("", "__outcome"))
    # Outcomes may omit the entity (keyed by request id alone); only a named, different one clashes.
    named = joined[f"{eid}__outcome"]
    clash = named.notna().to_numpy() & (joined[eid].astype(str) != named.astype(str)).to_numpy()
    if clash.any():
        row = joined.loc[clash].iloc[0]
        raise InputError(
            f"outcomes: request {row[rid]!r} belongs to {eid} {row[f'{eid}__outcome']!r} "
            f"but was predicted for {row[eid]!r}"
        )
    joined[target] = positive_mask(joined[target], contract.target.positive).astype(np.int64)
    joined = joined.drop(columns=[f"{eid}__outcome"]).reset_index(drop=True)

    stats = LabelStats(
        cutoff=cutoff.isoformat(),
        n_predictions=len(predictions),
        n_too_recent=int((~closed).sum()),
        n_unlabelled=int(closed.sum()) - len(joined),
        n_labelled=len(joined),
        n_positive=int(joined[target].sum()),
    )
    return joined, stats


def join_labels(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    contract: Contract,
    as_of: datetime | str | pd.Timestamp,
    label_delay_days: int,
) -> pd.DataFrame:
    """Predictions whose label is known at ``as_of``, with the target as 0/1 ``int64``.

    ``outcomes`` has the contract's request id, entity id and target columns plus
    ``observed_time``. Kept: predictions with ``event_time <= as_of - label_delay_days`` whose
    outcome was observed at or before ``as_of``; if a request has several outcomes by then,
    the latest observed wins. The target is 1 where the outcome equals
    ``contract.target.positive`` (compared with :func:`canonical_label`, so ``1``, ``"1"``,
    ``1.0`` and ``True`` agree) and 0 otherwise; outcomes with a missing value count as not
    arrived. A target column already in ``predictions`` is replaced. Prediction order is kept.
    Raises InputError when a column is missing or an outcome names another entity than its
    prediction.
    """
    return join_labels_with_stats(predictions, outcomes, contract, as_of, label_delay_days)[0]
