"""Draft a feature contract from a user's data file, so people can bring their own data.

The draft is a starting point to review: types from dtypes and values, vocabularies up to a
cap (open, so new values are counted rather than rejected), ranges widened by a margin.
:func:`contract_yaml` prints it with YAML comments giving the reasons for non-obvious choices:

- **Request id.** Without a request id column (or with ``--request-id`` naming the entity id
  column), the contract names a derived column that ingest computes
  (:mod:`driftline.ingest`): ``<id>_request`` (the entity id itself) when the id is unique per
  row; when it repeats, ``--request-id <id>`` asks for ``<id>_<timestamp>_request`` (id ``@``
  event time), which must then be unique.
- **Target.** Binary only: 0/1 (positive 1), booleans (positive true), or two text values
  (positive ``yes``/``true``/``y``/``t``/``positive``/``1`` when one of them; otherwise
  ``--positive`` is asked for, listing both).
- **Soft ranges.** A numeric range is the observed min/max widened by the margin, marked
  ``range_soft: true``: values outside it are stored and counted per feature (ingest's
  ``outside_soft_range``), not quarantined, until a person reviews the range and deletes
  ``range_soft`` to enforce it. Hand-written ranges (no ``range_soft``) are hard.
- **Integer codes.** An integer column with 2..20 distinct values that repeat, not a count-like
  range (its smallest value above 1 and the values sparse or all at least 100: MCC, HTTP status,
  region codes) is proposed as categorical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import yaml

from driftline.contract import Contract, parse_contract
from driftline.errors import InputError

_BOOL_TEXT = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_POSITIVE_TEXT = ("1", "true", "yes", "y", "t", "positive", "pos")
MAX_CODES = 20


@dataclass
class Notes:
    """Why the draft chose what it did: comments for :func:`contract_yaml`."""

    request_id: str | None = None
    target: str | None = None
    features: dict[str, str] = field(default_factory=dict)


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


def _codes(s: pd.Series) -> str | None:
    """Why an integer column reads as category codes, or None when it looks like a quantity."""
    v = s.dropna()
    if not len(v) or pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return None
    if not pd.api.types.is_integer_dtype(s) and not (v == v.round()).all():
        return None
    distinct = v.nunique()
    if not 2 <= distinct <= MAX_CODES or len(v) < 2 * distinct:
        return None
    lo, hi = float(v.min()), float(v.max())
    if lo <= 1 or not (hi - lo + 1 > 2 * distinct or lo >= 100):
        return None  # count-like: starts at 0/1, negative, or a dense small range
    return (
        f"integer codes ({distinct} distinct values, {lo:g}..{hi:g}, not a count-like range) proposed as "
        "categorical; make it numeric if it is a quantity"
    )


def _target(frame: pd.DataFrame, target: str, positive: str | int | bool | None) -> tuple[str | int | bool, str]:
    """The positive label of a binary target and a note on how it was chosen."""
    from driftline.labels import canonical_label

    s = frame[target]
    values = s.dropna().unique().tolist()
    shown = sorted({str(v) for v in values})
    if any(isinstance(v, dict | list | tuple | set) for v in values):
        raise InputError(f"--target column {target!r} holds lists or mappings, not labels")
    canon = {canonical_label(v) for v in values} - {None, ""}
    if len(canon) > 2:
        listed = ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")
        raise InputError(f"--target column {target!r} has {len(canon)} distinct values ({listed}); it must be binary")
    if positive is not None:
        if canonical_label(positive) not in canon:
            raise InputError(f"--positive {positive!r} is not a value of {target!r} ({', '.join(shown)})")
        return positive, f"positive label {positive!r} (given)"
    if not canon:
        raise InputError(f"--target column {target!r} has no labels")
    if canon <= {"0", "1"}:
        if pd.api.types.is_bool_dtype(s) or {str(v).strip().lower() for v in values} <= {"true", "false"}:
            return True, "boolean target: positive label true"
        return 1, "0/1 target: positive label 1"
    texts = sorted({str(v).strip() for v in values})
    for word in _POSITIVE_TEXT:
        hit = [t for t in texts if t.lower() == word]
        if hit:
            return hit[0], f"positive label {hit[0]!r} of {', '.join(texts)} (pass --positive to choose the other)"
    raise InputError(f"--positive is needed: which value of {target!r} is the positive class? ({', '.join(shown[:5])})")


def _request_id(frame: pd.DataFrame, entity_id: str, timestamp: str, request_id: str | None) -> tuple[str, str | None]:
    """The request id column, or a derived one (``<id>_request``...) with the note explaining it."""
    if request_id is not None and request_id != entity_id:
        if request_id not in frame.columns:
            raise InputError(f"--request-id column {request_id!r} is not in the file")
        return request_id, None
    if request_id is None and "request_id" in frame.columns:
        return "request_id", None
    ids = frame[entity_id]
    if ids.notna().all() and not ids.astype(str).duplicated().any():
        name, rule = f"{entity_id}_request", f"the value of {entity_id!r} (unique per row here)"
    elif request_id is None:
        raise InputError(
            f"no request id column: pass --request-id COL (a unique id per row), or --request-id {entity_id} "
            f"to derive one from {entity_id!r} and {timestamp!r}"
        )
    elif not frame[[entity_id, timestamp]].astype(str).duplicated().any():
        name, rule = f"{entity_id}_{timestamp}_request", f"{entity_id!r} '@' {timestamp!r} (ISO-8601)"
    else:
        raise InputError(
            f"no request id column, and {entity_id!r} with {timestamp!r} repeats: pass --request-id COL "
            "(a unique id per row)"
        )
    if name in frame.columns:
        raise InputError(f"no request id column, and the derived name {name!r} is taken: pass --request-id COL")
    return name, f"derived request id: ingest computes {name!r} as {rule} when files do not carry it"


def infer_with_notes(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str,
    entity_id: str,
    request_id: str | None = None,
    positive: str | int | bool | None = None,
    vocab_cap: int = 50,
    margin: float = 0.1,
    name: str = "model",
) -> tuple[Contract, Notes]:
    """A contract for this frame (every non-id column becomes a feature) and the reasons behind it."""
    for col, role in ((target, "target"), (timestamp, "timestamp"), (entity_id, "id")):
        if col not in frame.columns:
            raise InputError(
                f"--{role} column {col!r} is not in the file (columns: {', '.join(map(str, frame.columns))})"
            )
    if len(frame) == 0:
        raise InputError("the file has no rows to draft a contract from")
    notes = Notes()
    rid, notes.request_id = _request_id(frame, entity_id, timestamp, request_id)
    positive, notes.target = _target(frame, target, positive)
    features: dict[str, dict] = {}
    for col in frame.columns:
        if col in {target, timestamp, entity_id, rid}:
            continue
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            continue  # other timestamps are not model inputs; derive features from them upstream
        if pd.api.types.is_object_dtype(s) and s.map(lambda v: isinstance(v, dict | list | tuple | set)).any():
            raise InputError(f"column {col!r} holds lists or mappings; flatten it (or drop it) before inferring")
        codes = _codes(s)
        kind = "categorical" if codes else _kind(s)
        spec: dict = {"type": kind, "nullable": bool(s.isna().any())}
        if codes:
            notes.features[str(col)] = codes
        if kind == "numeric":
            v = pd.to_numeric(s, errors="coerce").dropna()
            if len(v):
                lo, hi = float(v.min()), float(v.max())
                pad = margin * (hi - lo) if hi > lo else margin * max(abs(hi), 1.0)
                low = lo - pad
                if lo >= 0 and low < 0:
                    low = 0.0  # a non-negative quantity stays non-negative
                spec["range"] = [_round(low), _round(hi + pad)]
                spec["range_soft"] = True
        elif kind == "categorical":
            from driftline.values import category_text

            counts = category_text(s, strip=True).dropna().value_counts()
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
    return parse_contract(data, "inferred contract"), notes


def infer_contract(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str,
    entity_id: str,
    request_id: str | None = None,
    positive: str | int | bool | None = None,
    vocab_cap: int = 50,
    margin: float = 0.1,
    name: str = "model",
) -> Contract:
    """A contract for this frame; every non-id column becomes a feature (see :func:`infer_with_notes`)."""
    contract, _ = infer_with_notes(
        frame,
        target=target,
        timestamp=timestamp,
        entity_id=entity_id,
        request_id=request_id,
        positive=positive,
        vocab_cap=vocab_cap,
        margin=margin,
        name=name,
    )
    return contract


def contract_yaml(contract: Contract, notes: Notes) -> str:
    """The contract as YAML with each note as a comment line above the key it explains."""
    lines = ["# Drafted by 'driftline contract infer': review before use."]
    if any(f.range_soft for f in contract.features.values()):
        lines.append(
            "# range_soft: true marks a range drafted from this file: values outside it are stored and counted,"
        )
        lines.append("# not quarantined. Widen the range to what is legitimate, then delete range_soft to enforce it.")
    key_text = {str(k): yaml.safe_dump({k: 0}).split(": 0", 1)[0] for k in contract.features}
    comments: dict[str, str] = {}
    if notes.request_id:
        comments["request_id:"] = notes.request_id
    if notes.target:
        comments["target:"] = notes.target
    for feature, note in notes.features.items():
        comments[f"  {key_text[feature]}:"] = note
    in_features = False
    for line in contract.to_yaml().splitlines():
        if not line.startswith(" "):
            in_features = line.startswith("features:")
        for prefix, note in comments.items():
            nested = prefix.startswith("  ")
            if line.startswith(prefix) and (in_features == nested) and (not nested or line[len(prefix) - 1] == ":"):
                indent = "  " if nested else ""
                lines.append(f"{indent}# {note}")
                break
        lines.append(line)
    return "\n".join(lines) + "\n"


def _round(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    digits = max(0, 4 - math.floor(math.log10(abs(x))))
    return round(x, digits)
