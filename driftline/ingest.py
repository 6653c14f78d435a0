"""Ingest: check every row of a file against the contract, store the good, quarantine the bad.

Counts always reconcile: ``rows_in == stored + quarantined + duplicates_skipped``. A file that
cannot be used as a whole (unreadable, empty, missing columns, too large, invalid UTF-8, a
column named twice) raises InputError before anything is written, and several files go in one
transaction, so the store is untouched when any of them is malformed.

Row outcomes, in the order they are checked (a row gets the first reason that applies):
``unparseable_line`` (CSV line with the wrong number of fields), ``wrong_type:<col>`` for a
list or mapping in any contract column, ``too_long:<col>`` (text over :data:`MAX_FIELD_CHARS`
characters), ``missing_request_id``, ``missing_entity_id``, ``bad_timestamp`` (also ``now``,
``today`` and the like, and years outside 1970..2100), then per feature ``null:<f>``,
``wrong_type:<f>`` (also numbers too large for a float, and infinities), ``out_of_range:<f>``,
``unknown_category:<f>`` (closed vocabularies only), and finally ``conflicting_duplicate``
for a request id that repeats within the batch with other content (the first copy is kept;
the reason says "within the batch"). A request id already in the store (or in an earlier file
of the same ingest) with different content is ``conflicting_duplicate`` too, so both cases
count under one ``by_reason`` key. Exact copies within the batch and rows already in the store
are ``duplicates_skipped``. (Stores written before this rule hold ``duplicate_request_id`` for
the within-batch case; it means the same: :data:`CONFLICT_REASONS` names both.) Values outside
an open vocabulary are stored and counted. Outcomes are checked for ``missing_request_id``,
``null:<target>``, ``bad_label`` (see :func:`label_values`) and ``bad_timestamp``; an outcome
whose request id repeats within the batch with other content, or that is already stored for the
same request and observation time with another label, is ``conflicting_duplicate``.

**Counting.** A quarantined row is stored once, with its first reason; ``by_reason`` counts every
fault of every row (a row with a null in one column and a value out of range in another counts
under ``null:<a>`` and ``out_of_range:<b>``), so its sum can exceed ``quarantined``;
``by_first_reason`` counts each quarantined row once, by its stored reason, and sums to
``quarantined``. A value blanked as a list/mapping or over-long text is not counted again as a
null or a missing id. A feature whose range is soft (``range_soft: true``, what ``contract
infer`` drafts) has values outside it stored and counted in ``outside_soft_range``, not
quarantined.

**Null spellings.** Only an empty CSV field (or a Parquet null) is missing, unless the contract
lists text as nulls: ``null_values: [NA, "n/a"]`` at the top level applies to every contract
column, and a feature's own ``null_values`` replaces it for that feature (``[]`` for none).
They are applied right after reading (:meth:`~driftline.contract.Contract.apply_null_values`).

Values are read as :mod:`driftline.values` says: categories as canonical text (``4111.0`` is
``"4111"``, surrounding whitespace dropped, empty text is missing), booleans from
true/false, 1/0, yes/no (any case), timestamps from datetimes, text or Unix-time numbers (unit
from the magnitude). A numeric timestamp column that is not Unix time is refused as a whole.
Request and entity ids are canonical text too: an integral float id (``900001.0``, what pandas
makes of an id column with a blank) is ``"900001"``, and so is the text ``900001.0``. CSV id
columns are read as text, so long numeric ids keep every digit.

**Derived request ids.** A contract drafted from data without a request id column (see
:mod:`driftline.infer`) names a column that the files do not carry: ``<entity_id>_request``
means "the entity id is the request id" (one row per entity), and
``<entity_id>_<timestamp>_request`` means "entity id ``@`` event time" (ISO-8601, e.g.
``u1@2026-01-05T10:00:00``). When such a column is missing from a file, ingest derives it by
that rule, deterministically, so re-ingesting the same rows gives the same ids.

Each quarantined row carries ``row_number``: for CSV the 1-based line of the file (the header
is line 1; blank lines and broken lines count, as in any editor), for Parquet the 1-based row.
CSV line numbers assume no quoted field spans several lines; when the file's lines do not
match the rows read (it has such fields), ``row_number`` is left empty rather than guessed.
Quarantine is idempotent: a file whose content (SHA-256) was ingested before does not add its
bad rows to the quarantine again (they are counted as quarantined, and in
``quarantine_already_recorded``).

A predictions file may also carry the contract's target column: its labels are not stored from
a predictions file (outcomes need an observation time). The report says so
(``target_ignored``); with an ``observed_time`` column the same file can be ingested again with
``kind="outcomes"`` to store the labels.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError
from driftline.io import Table, open_text, read_table, require_columns
from driftline.labels import canonical_label
from driftline.store import MODEL_COLUMNS, OUTCOME_TIME, Store
from driftline.values import category_text, parse_bool, parse_times

MAX_FIELD_CHARS = 10_000
"""Longest text accepted in one field; longer values quarantine the row as ``too_long:<col>``."""
_WORDS_OF_TIME = {"now", "today", "tomorrow", "yesterday", "epoch"}
_INTEGRAL_TEXT = re.compile(r"^-?\d+\.0+$")
_SCALAR_KINDS = {"string", "empty", "floating", "integer", "mixed-integer-float", "boolean", "decimal"}
CONFLICT = "conflicting_duplicate"
"""Reason of a row whose request id is known (store, earlier file, earlier row) with other content."""
WITHIN_BATCH_CONFLICT = f"{CONFLICT} (request id repeats within the batch with other content; first copy kept)"
CONFLICT_REASONS = frozenset({CONFLICT, "duplicate_request_id"})
"""Reason keys that mean a content conflict; ``duplicate_request_id`` is the within-batch key of older stores."""


@dataclass
class Checked:
    """A batch split into usable rows and quarantined rows with reasons."""

    good: pd.DataFrame
    bad_raw: pd.DataFrame
    bad_reasons: list[str]
    bad_rows: list[int | None]
    """1-based positions of the bad rows in the checked frame (ingest turns them into file lines)."""
    exact_duplicates: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    good_rows: list[int] = field(default_factory=list)
    """1-based positions of the good rows in the checked frame, in the order of ``good``."""
    faults: dict[str, int] = field(default_factory=dict)
    """Rows per reason key, every fault of a row counted (a row's first fault is its quarantine reason)."""
    outside_soft_range: dict[str, int] = field(default_factory=dict)
    """Per feature with a soft range: stored values outside it."""


def _reason_key(text: str, column: str | None = None) -> str:
    """The ``by_reason`` key of a reason: ``kind:column`` without the detail in parentheses."""
    at = text.find(":" + column) if column else -1
    return text[: at + 1 + len(column)] if column and at >= 0 else text.split(" (", 1)[0]


def _first_keys(reasons: Sequence[str], keys: Collection[str]) -> Counter[str]:
    """Quarantined rows per reason key; ``keys`` (the fault keys) place a column name holding ``" ("``."""
    out: Counter[str] = Counter()
    longest = sorted(keys, key=len, reverse=True)
    for text in reasons:
        key = text.split(" (", 1)[0]
        if key not in keys:
            key = next((k for k in longest if text == k or text.startswith(k + " (")), key)
        out[key] += 1
    return out


class _Reasons:
    """Each row's first fault (its quarantine reason) and, per reason key, every row with that fault."""

    def __init__(self, n: int) -> None:
        self.first = np.full(n, None, dtype=object)
        self.every: dict[str, np.ndarray] = {}
        self.shaped: dict[str, np.ndarray] = {}
        """Per column, the values blanked as a list/mapping or over-long text (not counted again as null)."""

    def flag(self, mask: pd.Series | np.ndarray, text: pd.Series | str, column: str | None = None) -> None:
        m = np.asarray(mask, dtype=bool)
        if column is not None and column in self.shaped:
            m = m & ~self.shaped[column]
        if not m.any():
            return
        texts = None if isinstance(text, str) else np.asarray(text, dtype=object)
        key = _reason_key(text if texts is None else str(texts[m][0]), column)
        seen = self.every.get(key)
        self.every[key] = m if seen is None else seen | m
        free = m & pd.isna(self.first)
        if free.any():
            self.first[free] = text if texts is None else texts[free]

    def faults(self) -> dict[str, int]:
        return {k: int(m.sum()) for k, m in self.every.items()}


@dataclass
class IngestReport:
    """What happened to every row that came in."""

    files: list[str]
    rows_in: int = 0
    stored: int = 0
    quarantined: int = 0
    duplicates_skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """Rows per fault, every fault of a row counted: a row with a null in one column and a value out
    of range in another counts under both keys (its sum can exceed ``quarantined``)."""
    by_first_reason: dict[str, int] = field(default_factory=dict)
    """Quarantined rows by the reason they were quarantined with (their first fault): sums to ``quarantined``."""
    unseen_categories: dict[str, int] = field(default_factory=dict)
    outside_soft_range: dict[str, int] = field(default_factory=dict)
    """Per feature with a soft range (``range_soft: true``): values outside it, stored and counted."""
    kind: str = "predictions"
    target_ignored_files: list[str] = field(default_factory=list)
    """Predictions files that also held the target column (its labels were not stored)."""
    target_column: str | None = None
    observed_time_present: bool = False
    quarantine_already_recorded: int = 0
    """Quarantined rows of a file ingested before: counted, not written to the quarantine again."""

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.stored + self.quarantined + self.duplicates_skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "kind": self.kind,
            "rows_in": self.rows_in,
            "stored": self.stored,
            "quarantined": self.quarantined,
            "duplicates_skipped": self.duplicates_skipped,
            "by_reason": dict(sorted(self.by_reason.items())),
            "by_first_reason": dict(sorted(self.by_first_reason.items())),
            "unseen_categories": dict(sorted(self.unseen_categories.items())),
            "outside_soft_range": dict(sorted(self.outside_soft_range.items())),
            "reconciles": self.reconciles,
            "target_ignored": bool(self.target_ignored_files),
            "target_column": self.target_column if self.target_ignored_files else None,
            "target_ignored_files": list(self.target_ignored_files),
            "quarantine_already_recorded": self.quarantine_already_recorded,
        }

    def target_note(self) -> str | None:
        """One line for people when labels in a predictions file were not stored, else None."""
        if not self.target_ignored_files:
            return None
        col = self.target_column
        if self.observed_time_present:
            return (
                f"note: labels in column {col!r} were not stored from a predictions file; the file also has "
                f"{OUTCOME_TIME}, so ingest it again with --kind outcomes to store them"
            )
        return (
            f"note: labels in column {col!r} were not stored: labels go in an outcomes file "
            f"(request id, {col}, {OUTCOME_TIME})"
        )


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def canonical_ids(values: pd.Series) -> pd.Series:
    """Ids as canonical text (object, NaN where missing): ``900001.0`` and ``" 900001 "`` are ``"900001"``."""
    text = category_text(values, strip=True)
    integral = text.str.match(_INTEGRAL_TEXT.pattern).fillna(False).astype(bool)
    if integral.any():
        text = text.copy()
        text[integral] = text[integral].str.split(".", n=1).str[0]
    return text


def _nested(raw: pd.Series) -> pd.Series:
    """Mask of values that are lists, mappings, sets or arrays (not one value)."""
    if not pd.api.types.is_object_dtype(raw.dtype) or pd.api.types.infer_dtype(raw, skipna=True) in _SCALAR_KINDS:
        return pd.Series(False, index=raw.index)
    return raw.map(lambda v: isinstance(v, dict | list | tuple | set | np.ndarray)).astype(bool)


def _too_long(raw: pd.Series) -> pd.Series:
    """Mask of text values longer than :data:`MAX_FIELD_CHARS`."""
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return pd.Series(False, index=raw.index)
    if pd.api.types.is_bool_dtype(raw.dtype):
        return pd.Series(False, index=raw.index)
    kind = pd.api.types.infer_dtype(raw, skipna=True)
    if kind == "string":
        return (raw.str.len() > MAX_FIELD_CHARS).fillna(False).astype(bool)
    if kind in _SCALAR_KINDS:
        return pd.Series(False, index=raw.index)
    return raw.map(lambda v: isinstance(v, str) and len(v) > MAX_FIELD_CHARS).astype(bool)


def _to_float(raw: pd.Series) -> pd.Series:
    """Numbers as float64, NaN for what is not a finite number (never an OverflowError)."""
    if pd.api.types.is_bool_dtype(raw.dtype) or pd.api.types.is_numeric_dtype(raw.dtype):
        vals = raw.astype("float64")
    else:
        try:
            vals = pd.to_numeric(raw, errors="coerce").astype("float64")
        except (OverflowError, TypeError, ValueError):
            vals = pd.to_numeric(raw.map(lambda v: str(v) if v is not None else None), errors="coerce")
            vals = vals.astype("float64")
    return vals.where(np.isfinite(vals.to_numpy(dtype="float64", na_value=np.nan)))


def _times(raw: pd.Series, what: str) -> pd.Series:
    """Event times, NaT for words like ``now`` and for years outside 1970..2100."""
    try:
        ts = parse_times(raw, what)
    except (OverflowError, TypeError):
        ts = parse_times(raw.map(lambda v: None if v is None or v is pd.NA else str(v)), what)
    if not pd.api.types.is_datetime64_any_dtype(raw.dtype) and not pd.api.types.is_numeric_dtype(raw.dtype):
        words = raw.astype("string").str.strip().str.lower().isin(_WORDS_OF_TIME).fillna(False).astype(bool)
        ts = ts.mask(words.to_numpy(dtype=bool))
    years = ts.dt.year
    return ts.mask(((years < 1970) | (years > 2100)).fillna(False).to_numpy(dtype=bool))


def _blank_nested(raw: pd.Series, nested: pd.Series) -> pd.Series:
    return raw.astype(object).mask(nested.to_numpy(dtype=bool), None) if nested.any() else raw


def _shape_flags(frame: pd.DataFrame, columns: Sequence[str], reasons: _Reasons) -> dict[str, pd.Series]:
    """Flag lists/mappings and over-long text in ``columns``; the columns with such values blanked."""
    cleaned: dict[str, pd.Series] = {}
    for name in columns:
        if name not in frame.columns:
            continue
        raw = frame[name]
        nested = _nested(raw)
        if nested.any():
            reasons.flag(nested, f"wrong_type:{name} (a list or mapping is not one value)")
        long = _too_long(raw)
        if long.any():
            reasons.flag(long, f"too_long:{name} (more than {MAX_FIELD_CHARS:,} characters)")
        if nested.any() or long.any():
            reasons.shaped[name] = np.asarray(nested | long, dtype=bool)
            cleaned[name] = _blank_nested(raw, nested | long)
        else:
            cleaned[name] = raw
    return cleaned


def _truncated(raw: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows with any over-long text cut to :data:`MAX_FIELD_CHARS` (the store stays bounded)."""
    out = raw
    for name in raw.columns:
        col = raw[name]
        long = _too_long(col)
        if long.any():
            if out is raw:
                out = raw.copy()
            cut = col.astype(object)
            cut[long] = col[long].map(lambda v: v[:MAX_FIELD_CHARS] + "...")
            out[name] = cut
    return out


def check_predictions(frame: pd.DataFrame, contract: Contract, source: str) -> Checked:
    """Vectorised row checks of a predictions batch against the contract (order: module docstring)."""
    c = contract
    require_columns(frame, c.row_columns, source)
    n = len(frame)
    reasons = _Reasons(n)
    reason = reasons.first
    flag = reasons.flag
    clean = pd.DataFrame(index=frame.index)

    text_extras = [e for e in MODEL_COLUMNS if e not in ("score", "latency_ms")]
    cols = _shape_flags(frame, [*c.row_columns, *text_extras], reasons)
    rid = canonical_ids(cols[c.request_id])
    flag(rid.isna(), "missing_request_id", c.request_id)
    clean[c.request_id] = rid.astype("string")
    ent = canonical_ids(cols[c.entity_id])
    flag(ent.isna(), "missing_entity_id", c.entity_id)
    clean[c.entity_id] = ent.astype("string")
    ts = _times(cols[c.timestamp], f"{source}: timestamp column {c.timestamp!r}")
    flag(ts.isna(), "bad_timestamp", c.timestamp)
    clean[c.timestamp] = ts

    unseen: dict[str, int] = {}
    soft: dict[str, int] = {}
    for name, feat in c.features.items():
        raw = cols[name]
        null = raw.isna()
        if not feat.nullable:
            flag(null, f"null:{name}", name)
        if feat.type == "numeric":
            vals = _to_float(raw)
            bad = (~null) & vals.isna()
            if bad.any():
                flag(bad, "wrong_type:" + name + " (" + raw.map(_show).astype(str) + " is not a number)", name)
            if feat.range is not None:
                lo, hi = feat.range
                slack = c.range_tolerance * (hi - lo)
                out = vals.notna() & ((vals < lo - slack) | (vals > hi + slack))
                if feat.range_soft:
                    count = int(out.sum())
                    if count:
                        soft[name] = count
                elif out.any():
                    flag(out, f"out_of_range:{name} (" + vals.astype(str) + f" not in [{lo:g}, {hi:g}])", name)
            clean[name] = vals
        elif feat.type == "boolean":
            vals, bad = parse_bool(raw)
            if np.asarray(bad, dtype=bool).any():
                flag(bad, "wrong_type:" + name + " (" + raw.map(_show).astype(str) + " is not a boolean)", name)
            clean[name] = vals
        else:
            vals = category_text(raw, strip=True)
            if not feat.nullable:
                flag(vals.isna() & ~null, f"null:{name}", name)
            if feat.vocabulary:
                # A reviewed alias (contract ``aliases:``) is a known spelling of a vocabulary value;
                # the value is stored as received.
                known = vals.map(feat.aliases).fillna(vals) if feat.aliases else vals
                outside = vals.notna() & ~known.isin(feat.vocabulary).fillna(False).astype(bool)
                if feat.closed:
                    text = "unknown_category:" + name + " (" + vals.astype(str).map(_show) + " not in vocabulary)"
                    flag(outside, text, name)
                else:
                    count = int(outside.sum())
                    if count:
                        unseen[name] = count
            clean[name] = vals.astype(object).where(vals.notna(), None)

    for extra in MODEL_COLUMNS:
        if extra not in frame.columns:
            continue
        raw = cols.get(extra, frame[extra])
        if extra in ("score", "latency_ms"):
            vals = _to_float(raw)
            bad = raw.notna() & vals.isna()
            if bad.any():
                flag(bad, f"wrong_type:{extra} (" + raw.map(_show).astype(str) + " is not a number)", extra)
            clean[extra] = vals.astype("float64")
        else:  # model name, version, variant and the predicted label are kept as text
            clean[extra] = category_text(raw)

    ok = pd.isna(reason)
    # Duplicate request ids among otherwise good rows: exact copies are skipped, conflicts quarantined.
    good_idx = np.flatnonzero(ok)
    exact = 0
    if len(good_idx):
        sub = clean.iloc[good_idx]
        dup_id = sub.duplicated(subset=[c.request_id], keep="first").to_numpy()
        if dup_id.any():
            dup_row = sub.astype(str).duplicated(keep="first").to_numpy()
            exact_mask = dup_id & dup_row
            conflict = dup_id & ~dup_row
            exact = int(exact_mask.sum())
            hit = np.zeros(n, dtype=bool)
            hit[good_idx[conflict]] = True
            flag(hit, WITHIN_BATCH_CONFLICT)
            ok = pd.isna(reason)
            ok[good_idx[exact_mask]] = False
    keep = np.asarray(ok, dtype=bool)
    bad = pd.notna(reason)
    bad_pos = np.flatnonzero(bad)
    return Checked(
        good=clean[keep].reset_index(drop=True),
        bad_raw=_truncated(frame.iloc[bad_pos].reset_index(drop=True)),
        bad_reasons=[str(r) for r in reason[bad_pos]],
        bad_rows=[int(i) + 1 for i in bad_pos],
        exact_duplicates=exact,
        unseen=unseen,
        good_rows=[int(i) + 1 for i in np.flatnonzero(keep)],
        faults=reasons.faults(),
        outside_soft_range=soft,
    )


def label_values(contract: Contract) -> frozenset[str] | None:
    """The target's accepted labels as :func:`~driftline.labels.canonical_label` text, or None if open.

    A positive label of ``1``/``0``/``True``/``False`` (or their text) makes a binary target:
    ``0``/``1``, ``0.0``/``1.0``, ``true``/``false`` in any case, stripped. A text positive
    label (``churn``) leaves the other value to the data: ingest takes it from the labels
    already stored, else from the most common other label of the batch.
    """
    pos = canonical_label(contract.target.positive)
    return frozenset({"0", "1"}) if pos in ("0", "1") else None


def check_outcomes(
    frame: pd.DataFrame, contract: Contract, source: str, *, labels: Collection[str] | None = None
) -> Checked:
    """Row checks of an outcomes batch: request id, label and observation time.

    ``labels`` are the accepted canonical labels (default: :func:`label_values`; any label when
    that is None); a present label outside them is ``bad_label``.
    """
    c = contract
    require_columns(frame, [c.request_id, c.target.name, OUTCOME_TIME], source)
    n = len(frame)
    reasons = _Reasons(n)
    reason = reasons.first
    flag = reasons.flag

    cols = _shape_flags(frame, [c.request_id, c.target.name, OUTCOME_TIME, c.entity_id], reasons)
    rid = canonical_ids(cols[c.request_id])
    flag(rid.isna().to_numpy(), "missing_request_id", c.request_id)
    label = cols[c.target.name]
    flag(label.isna().to_numpy(), f"null:{c.target.name}", c.target.name)
    allowed = labels if labels is not None else label_values(c)
    canon = label.map(canonical_label)
    if allowed is not None:
        flag((label.notna() & ~canon.isin(list(allowed))).to_numpy(), "bad_label", c.target.name)
    else:
        flag((label.notna() & (canon.fillna("") == "")).to_numpy(), "bad_label", c.target.name)
    t = _times(cols[OUTCOME_TIME], f"{source}: column {OUTCOME_TIME!r}")
    flag(t.isna().to_numpy(), "bad_timestamp", OUTCOME_TIME)
    clean = pd.DataFrame({c.request_id: rid.astype("string")})
    clean[c.entity_id] = canonical_ids(cols[c.entity_id]).astype("string") if c.entity_id in frame.columns else None
    clean[c.target.name] = label.map(_label_text)
    clean[OUTCOME_TIME] = t
    ok = pd.isna(reason)
    dup = clean[c.request_id].duplicated(keep="first").to_numpy() & ok
    exact_mask = dup & clean.astype(str).duplicated(keep="first").to_numpy()
    flag(dup & ~exact_mask, WITHIN_BATCH_CONFLICT)
    keep = pd.isna(reason) & ~exact_mask
    bad_pos = np.flatnonzero(pd.notna(reason))
    return Checked(
        good=clean[keep].reset_index(drop=True),
        bad_raw=_truncated(frame.iloc[bad_pos].reset_index(drop=True)),
        bad_reasons=[str(r) for r in reason[bad_pos]],
        bad_rows=[int(i) + 1 for i in bad_pos],
        exact_duplicates=int(exact_mask.sum()),
        good_rows=[int(i) + 1 for i in np.flatnonzero(keep)],
        faults=reasons.faults(),
    )


def _label_text(v: Any) -> str:
    """Labels stored as text; integral floats lose their '.0' so 1.0 and 1 agree."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    return str(v).strip()


def detect_kind(frame: pd.DataFrame, contract: Contract) -> str:
    """'outcomes' when the file has a label and observation time but no features."""
    has_features = any(f in frame.columns for f in contract.features)
    if not has_features and contract.target.name in frame.columns and OUTCOME_TIME in frame.columns:
        return "outcomes"
    return "predictions"


def _is_csv(path: Path) -> bool:
    return not "".join(path.suffixes[-2:]).lower().endswith((".parquet", ".pq"))


def csv_row_lines(path: str | Path, rows: int, bad_lines: Sequence[int] = ()) -> np.ndarray | None:
    """The 1-based file line of each row pandas read from a CSV file, or None if they do not add up.

    Lines are counted as an editor does (the header is line 1 when the file starts with it).
    Lines pandas skips are passed over: blank (whitespace-only) lines, the header, and the
    broken ``bad_lines``. A quoted field holding a newline spreads one row over several lines;
    then the count no longer matches ``rows`` and the answer is None.
    """
    skip = set(bad_lines)
    out = np.empty(rows, dtype=np.int64)
    k = 0
    header_seen = False
    with open_text(path) as fh:
        for i, text in enumerate(fh, start=1):
            if not text.strip(" \t\r\n"):
                continue
            if not header_seen:
                header_seen = True
                continue
            if i in skip:
                continue
            if k == rows:
                return None
            out[k] = i
            k += 1
    return out if k == rows else None


def request_id_rule(contract: Contract) -> str | None:
    """How a missing request id column is derived: ``"entity"``, ``"entity@time"`` or None (not derived)."""
    c = contract
    if c.request_id == f"{c.entity_id}_request":
        return "entity"
    if c.request_id == f"{c.entity_id}_{c.timestamp}_request":
        return "entity@time"
    return None


def with_request_id(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """``frame`` with the contract's derived request id column added when it is missing (module docstring)."""
    c = contract
    rule = request_id_rule(c)
    if rule is None or c.request_id in frame.columns or c.entity_id not in frame.columns:
        return frame
    ent = frame[c.entity_id]
    ent = canonical_ids(ent.astype(object).mask(_nested(ent).to_numpy(dtype=bool), None))
    if rule == "entity":
        derived = ent
    else:
        if c.timestamp not in frame.columns:
            return frame
        raw = frame[c.timestamp]
        try:
            ts = _times(raw.astype(object).mask(_nested(raw).to_numpy(dtype=bool), None), "timestamp")
            stamp = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.removesuffix(".000000").astype(object)
        except InputError:  # not Unix times: the check of the timestamp column reports it
            stamp = pd.Series(np.nan, index=frame.index, dtype=object)
        # An unreadable time keeps its text, so the row is quarantined as bad_timestamp, not as a missing id.
        stamp = stamp.where(stamp.notna(), raw.astype("string").astype(object))
        derived = (ent + "@" + stamp.astype(object)).where(ent.notna() & stamp.notna())
    out = frame.copy()
    out[c.request_id] = derived
    return out


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (as stored: compressed files are hashed compressed)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _Pending:
    """One checked file waiting to be written."""

    source: str
    kind: str
    table: Table
    frame: pd.DataFrame
    result: Checked
    rows_in: int
    digest: str
    _lines: Any = None

    def file_row(self, position: int | None) -> int | None:
        """The file's row number of a 1-based position in the checked frame (CSV line or Parquet row)."""
        if position is None or not _is_csv(self.table.path):
            return position
        if self._lines is None:
            lines = csv_row_lines(self.table.path, len(self.frame), [b.line for b in self.table.bad_lines])
            self._lines = False if lines is None else lines
        return None if self._lines is False else int(self._lines[position - 1])


def _other_labels(contract: Contract, store: Store, frames: Sequence[pd.DataFrame]) -> frozenset[str] | None:
    """Accepted labels of a text target: the positive one and the other one (stored, else most common)."""
    if label_values(contract) is not None:
        return None
    import sqlalchemy as sa

    pos = canonical_label(contract.target.positive)
    stored: set[str] = set()
    if sa.inspect(store.engine).has_table("outcomes"):
        col = store.tables["outcomes"].c[contract.target.name]
        with store.engine.connect() as conn:
            for (value,) in conn.execute(sa.select(col).distinct().limit(100)):
                stored.add(canonical_label(value) or "")
    stored.discard(pos)
    stored.discard("")
    if stored:
        return frozenset({pos, *stored})
    seen: Counter[str] = Counter()
    for frame in frames:
        if contract.target.name in frame.columns:
            seen.update(v for v in frame[contract.target.name].map(canonical_label).dropna() if v and v != pos)
    if not seen:
        return None
    top = max(seen.items(), key=lambda kv: (kv[1], [-ord(ch) for ch in kv[0]]))[0]
    return frozenset({pos, top})


def _store_conflicts(store: Store, conn: Any, kind: str, good: pd.DataFrame) -> np.ndarray:
    """Mask of good rows whose key is already stored with other content."""
    import sqlalchemy as sa

    c = store.contract
    out = np.zeros(len(good), dtype=bool)
    if good.empty:
        return out
    ids = good[c.request_id].astype(str).tolist()
    if kind == "predictions":
        t = store.tables["predictions"]
        names = [n for n in [c.request_id, c.entity_id, c.timestamp, *c.features, *MODEL_COLUMNS] if n in good.columns]
        all_names, rows = store._rows(good, t, [c.timestamp])
        where = [all_names.index(n) for n in names]
        mine = {str(r[0]): tuple(r[i] for i in where) for r in rows}
        cols = [t.c[n] for n in names]
    else:
        t = store.tables["outcomes"]
        names = [c.request_id, OUTCOME_TIME, c.target.name]
        all_names, rows = store._rows(good, t, [OUTCOME_TIME])
        where = [all_names.index(n) for n in names]
        mine = {(str(r[where[0]]), r[where[1]]): canonical_label(r[where[2]]) for r in rows}
        cols = [t.c[n] for n in names]
    theirs: dict[Any, Any] = {}
    key = t.c[c.request_id]
    for i in range(0, len(ids), 5000):
        for r in conn.execute(sa.select(*cols).where(key.in_(ids[i : i + 5000]))):
            if kind == "predictions":
                theirs[str(r[0])] = tuple(r)
            else:
                theirs[(str(r[0]), int(r[1]))] = canonical_label(r[2])
    if not theirs:
        return out
    keys = list(mine) if kind == "outcomes" else ids
    for i, k in enumerate(keys):
        if k in theirs and theirs[k] != mine[k]:
            out[i] = True
    return out


def _move_to_quarantine(p: _Pending, mask: np.ndarray, reason: str) -> None:
    """Quarantine the masked good rows of ``p`` with ``reason`` (their raw rows from the file)."""
    r = p.result
    pos = np.flatnonzero(mask)
    if not len(pos):
        return
    frame_pos = [r.good_rows[i] for i in pos]
    r.bad_raw = pd.concat([r.bad_raw, _truncated(p.frame.iloc[[q - 1 for q in frame_pos]].reset_index(drop=True))])
    r.bad_raw = r.bad_raw.reset_index(drop=True)
    r.bad_reasons += [reason] * len(pos)
    key = reason.split(" (", 1)[0]
    r.faults[key] = r.faults.get(key, 0) + len(pos)
    r.bad_rows += [p.file_row(q) for q in frame_pos]
    keep = ~mask
    r.good = r.good[keep].reset_index(drop=True)
    r.good_rows = [q for q, k in zip(r.good_rows, keep, strict=True) if k]


def _sort_bad(r: Checked) -> None:
    order = sorted(range(len(r.bad_rows)), key=lambda i: (r.bad_rows[i] is None, r.bad_rows[i] or 0))
    r.bad_raw = r.bad_raw.iloc[order].reset_index(drop=True)
    r.bad_reasons = [r.bad_reasons[i] for i in order]
    r.bad_rows = [r.bad_rows[i] for i in order]


def _quarantine_once(store: Store, conn: Any, p: _Pending) -> tuple[int, int]:
    """Quarantine ``p``'s bad rows not recorded before for this file content; (rows, already recorded)."""
    import sqlalchemy as sa

    r = p.result
    if not r.bad_reasons:
        return 0, 0
    meta = store.tables["store_meta"]
    key = f"quarantine:sha256:{p.digest}"
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first()
    done = set(json.loads(row[0])) if row else set()
    keys = [str(n) if n is not None else f"#{i}" for i, n in enumerate(r.bad_rows)]
    new = [i for i, k in enumerate(keys) if k not in done]
    if new:
        store.quarantine(
            r.bad_raw.iloc[new].reset_index(drop=True),
            [r.bad_reasons[i] for i in new],
            p.source,
            conn=conn,
            row_numbers=[r.bad_rows[i] for i in new],
        )
        value = json.dumps(sorted(done | set(keys)))
        if row:
            conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        else:
            conn.execute(meta.insert(), [{"key": key, "value": value}])
    return len(keys), len(keys) - len(new)


def ingest_files(paths: Sequence[str | Path], contract: Contract, store: Store, kind: str = "auto") -> IngestReport:
    """Check every file first, then write all of them in one transaction."""
    if not paths:
        raise InputError("no files given")
    if kind not in ("auto", "predictions", "outcomes"):
        raise InputError(f"unknown kind {kind!r} (expected predictions, outcomes or auto)")
    c = contract
    tables: list[tuple[Table, pd.DataFrame, str]] = []
    for path in paths:
        table = read_table(path, text_columns=[c.request_id, c.entity_id])
        if len(table.frame) == 0 and not table.bad_lines:
            raise InputError(f"{table.path}: no rows")
        frame = with_request_id(c.apply_null_values(table.frame), c)
        tables.append((table, frame, detect_kind(frame, c) if kind == "auto" else kind))
    outcome_frames = [f for _, f, k in tables if k == "outcomes"]
    labels = _other_labels(c, store, outcome_frames) if outcome_frames else None
    pending: list[_Pending] = []
    ignored: list[str] = []
    observed_time = False
    for table, frame, k in tables:
        source = str(table.path)
        if k == "predictions":
            result = check_predictions(frame, c, source)
        else:
            result = check_outcomes(frame, c, source, labels=labels)
        p = _Pending(source, k, table, frame, result, len(table.frame) + len(table.bad_lines), file_digest(table.path))
        result.bad_rows = [p.file_row(r) for r in result.bad_rows]
        if table.bad_lines:
            extra = pd.DataFrame({"line": [b.raw for b in table.bad_lines]})
            result.bad_raw = pd.concat([result.bad_raw, extra], ignore_index=True)
            result.bad_reasons += [f"unparseable_line ({b.reason})" for b in table.bad_lines]
            result.bad_rows += [b.line for b in table.bad_lines]
            result.faults["unparseable_line"] = result.faults.get("unparseable_line", 0) + len(table.bad_lines)
        if k == "predictions" and c.target.name in frame.columns:
            ignored.append(source)
            observed_time = observed_time or OUTCOME_TIME in frame.columns
        pending.append(p)

    kinds = {p.kind for p in pending}
    report = IngestReport(
        files=[p.source for p in pending],
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        target_ignored_files=ignored,
        target_column=c.target.name,
        observed_time_present=observed_time,
    )
    store.create()
    reasons: Counter[str] = Counter()
    first: Counter[str] = Counter()
    with store.transaction() as conn:
        for p in pending:
            result = p.result
            _move_to_quarantine(p, _store_conflicts(store, conn, p.kind, result.good), CONFLICT)
            _sort_bad(result)
            append = store.append_predictions if p.kind == "predictions" else store.append_outcomes
            res = append(result.good, conn=conn)
            q, already = _quarantine_once(store, conn, p)
            report.rows_in += p.rows_in
            report.stored += res.stored
            report.duplicates_skipped += res.duplicates_skipped + result.exact_duplicates
            report.quarantined += q
            report.quarantine_already_recorded += already
            reasons.update(result.faults)
            first.update(_first_keys(result.bad_reasons, result.faults.keys()))
            for name, count in result.unseen.items():
                report.unseen_categories[name] = report.unseen_categories.get(name, 0) + count
            for name, count in result.outside_soft_range.items():
                report.outside_soft_range[name] = report.outside_soft_range.get(name, 0) + count
    report.by_reason = dict(reasons)
    report.by_first_reason = dict(first)
    if not report.reconciles:  # a bug, not bad input: say so loudly
        raise AssertionError(f"ingest counts do not reconcile: {report.to_dict()}")
    return report
