"""Validate a batch, then store its good rows and quarantine the rest, in one transaction.

Nothing is lost and the counts reconcile: ``rows_in == stored + quarantined +
duplicates_skipped``. A row that breaks a row-level expectation is quarantined with the rule it
broke first (``expectation_name:column``). A batch-level failure (a missing column, a column of
the wrong type, fewer rows than ``min_rows``) stores nothing from the batch. Distribution
expectations (against a reference profile) do not stop storage: a drifted batch is still the
production log. A repeated request id keeps its first row; later copies that are identical to
it are passed to the store, which skips them as duplicates, and conflicting copies are
quarantined (as ingest does). Good rows are stored with their features as validation read them
(:func:`~driftline.validation.validate.normalise_batch`): ``4111.0`` in a categorical column is
stored as ``"4111"``, ``"yes"`` in a boolean column as True; quarantined rows keep the raw values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import DriftlineError
from driftline.validation.suite import DEFAULT_TOLERANCE
from driftline.validation.validate import ValidationResult, normalise_batch, validate_frame

UNIQUE_RULE = "expect_column_values_to_be_unique"


def _exact_copies(frame: pd.DataFrame, key: str, candidates: np.ndarray) -> np.ndarray:
    """Of the candidate rows (positions), those identical to the first row with the same key."""
    if not candidates.size:
        return candidates
    text = frame.astype(str)
    first = text.drop_duplicates(subset=[key], keep="first").set_index(key)
    rows = text.iloc[candidates]
    ref = first.loc[rows[key].to_numpy()]
    same = (rows.drop(columns=[key]).to_numpy() == ref[rows.drop(columns=[key]).columns].to_numpy()).all(axis=1)
    return candidates[same]


def validate_and_store(
    frame: pd.DataFrame,
    contract: Contract,
    store: Any,
    source: str,
    profile: Any = None,
    *,
    min_rows: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    validation: ValidationResult | None = None,
) -> dict[str, Any]:
    """Validate ``frame``, quarantine failing rows and append the rest to ``store``.

    Returns ``rows_in``, ``stored``, ``quarantined``, ``duplicates_skipped``, ``by_reason``,
    ``batch_error`` and ``refused`` (set when the batch was refused and nothing stored),
    ``success`` (the suite's verdict) and ``reconciles``. ``validation`` reuses a result
    already computed for this frame.
    """
    result = validation or validate_frame(frame, contract, profile, min_rows=min_rows, tolerance=tolerance)
    out: dict[str, Any] = {
        "source": source,
        "rows_in": len(frame),
        "stored": 0,
        "quarantined": 0,
        "duplicates_skipped": 0,
        "by_reason": {},
        "batch_error": result.batch_error,
        "refused": bool(result.batch_error),
        "success": result.success,
    }
    if result.batch_error:
        out["reconciles"] = False  # refused as a whole: the caller keeps the input
        return out
    mask = result.failed_row_mask().to_numpy(dtype=object, copy=True)
    # Good rows are stored as validation read them: category codes as text, booleans as bools.
    clean = normalise_batch(frame, contract)
    unique_label = f"{UNIQUE_RULE}:{contract.request_id}"
    dup_pos = np.flatnonzero(mask == unique_label)
    if dup_pos.size:
        mask[_exact_copies(clean, contract.request_id, dup_pos)] = None  # the store skips these
    bad = np.flatnonzero(pd.notna(mask))
    good = np.flatnonzero(pd.isna(mask))
    reasons = [str(r) for r in mask[bad]]
    with store.transaction() as conn:
        quarantined = store.quarantine(
            frame.iloc[bad], reasons, source, conn=conn, row_numbers=[int(i) + 1 for i in bad]
        )
        appended = store.append_predictions(clean.iloc[good], conn=conn)
        total = appended.stored + quarantined + appended.duplicates_skipped
        if total != len(frame):
            raise DriftlineError(
                f"{source}: counts do not reconcile ({len(frame)} rows in, {appended.stored} stored, "
                f"{quarantined} quarantined, {appended.duplicates_skipped} duplicates); nothing was stored"
            )
    out.update(
        stored=appended.stored,
        quarantined=quarantined,
        duplicates_skipped=appended.duplicates_skipped,
        by_reason=dict(sorted(Counter(reasons).items())),
        reconciles=True,
    )
    return out
