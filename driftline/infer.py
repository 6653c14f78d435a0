"""Draft a feature contract from a user's data file, so people can bring their own data.

The draft is a starting point to review: types from dtypes and values, vocabularies up to a
cap (open, so new values are counted rather than rejected), ranges widened by a margin.
"""

from __future__ import annotations

import math

import pandas as pd

from driftline.contract import Contract, parse_contract
from driftline.errors import InputError

_BOOL_TEXT = {"true", "false", "yes", "no", "t", "f", "y", "n"}


def _kind(s: pd.Series) -> str:
    values = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_numeric_dtype(s):
        return "numeric"
    if len(values) and set(values.astype(str).str.strip().str.lower().unique()) <= _BOOL_TEXT:
        return "boolean"
    converted = pd.to_numeric(values, errors="coerce")
    if len(values) and converted.notna().mean() > 0.99:
        return "numeric"
    return "categorical"


def infer_contract(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str,
    entity_id: str,
    request_id: str | None = None,
    positive: str | int | None = None,
    vocab_cap: int = 50,
    margin: float = 0.1,
    name: str = "model",
) -> Contract:
    """A contract for this frame; every non-id column becomes a feature."""
    for col, role in ((target, "target"), (timestamp, "timestamp"), (entity_id, "id")):
        if col not in frame.columns:
            raise InputError(
                f"--{role} column {col!r} is not in the file (columns: {', '.join(map(str, frame.columns))})"
            )
    rid = request_id or ("request_id" if "request_id" in frame.columns else None)
    if rid is None:
        raise InputError("no request id column: pass --request-id COL (a unique id per row)")
    if rid not in frame.columns:
        raise InputError(f"--request-id column {rid!r} is not in the file")
    if len(frame) == 0:
        raise InputError("the file has no rows to draft a contract from")
    if positive is None:
        labels = {str(v).lower() for v in frame[target].dropna().unique().tolist()}
        if labels <= {"0", "1", "0.0", "1.0"}:
            positive = 1
        elif labels <= {"true", "false"}:
            positive = True
        else:
            shown = ", ".join(sorted(labels)[:5])
            raise InputError(f"--positive is needed: which value of {target!r} is the positive class? ({shown})")
    features: dict[str, dict] = {}
    for col in frame.columns:
        if col in {target, timestamp, entity_id, rid}:
            continue
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            continue  # other timestamps are not model inputs; derive features from them upstream
        kind = _kind(s)
        spec: dict = {"type": kind, "nullable": bool(s.isna().any())}
        if kind == "numeric":
            v = pd.to_numeric(s, errors="coerce").dropna()
            if len(v):
                lo, hi = float(v.min()), float(v.max())
                pad = margin * (hi - lo) if hi > lo else margin * max(abs(hi), 1.0)
                low = lo - pad
                if lo >= 0 and low < 0:
                    low = 0.0  # a non-negative quantity stays non-negative
                spec["range"] = [_round(low), _round(hi + pad)]
        elif kind == "categorical":
            counts = s.dropna().astype(str).value_counts()
            if len(counts) <= vocab_cap:
                spec["vocabulary"] = sorted(counts.index.tolist())
        features[str(col)] = spec
    data = {
        "name": name,
        "entity_id": entity_id,
        "request_id": rid,
        "timestamp": timestamp,
        "target": {"name": target, "positive": positive},
        "features": features,
    }
    return parse_contract(data, "inferred contract")


def _round(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    digits = max(0, 4 - math.floor(math.log10(abs(x))))
    return round(x, digits)
