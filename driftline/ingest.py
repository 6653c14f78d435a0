"""Ingest: check every row of a file against the contract, store the good, quarantine the bad.

Counts always reconcile: ``rows_in == stored + quarantined + duplicates_skipped``. A file that
cannot be used as a whole (unreadable, empty, missing columns) raises InputError before
anything is written, and several files go in one transaction, so the store is untouched
when any of them is malformed.

Row outcomes, in the order they are checked (a row gets the first reason that applies):
``unparseable_line`` (CSV line with the wrong number of fields), ``missing_request_id``,
``missing_entity_id``, ``bad_timestamp``, then per feature ``null:<f>``, ``wrong_type:<f>``,
``out_of_range:<f>``, ``unknown_category:<f>`` (closed vocabularies only), and finally
``duplicate_request_id`` (same id, different content, within the batch; the first copy is
kept). Exact copies within the batch and rows already in the store are
``duplicates_skipped``. Values outside an open vocabulary are stored and counted.

Values are read as :mod:`driftline.values` says: categories as canonical text (``4111.0`` is
``"4111"``, surrounding whitespace dropped, empty text is missing), booleans from
true/false, 1/0, yes/no (any case), timestamps from datetimes, text or Unix-time numbers (unit
from the magnitude). A numeric timestamp column that is not Unix time is refused as a whole.

Each quarantined row carries ``row_number``: for CSV the 1-based line of the file (the header
is line 1; blank lines and broken lines count, as in any editor), for Parquet the 1-based row.
CSV line numbers assume no quoted field spans several lines; when the file's lines do not
match the rows read (it has such fields), ``row_number`` is left empty rather than guessed.

A predictions file may also carry the contract's target column: its labels are not stored from
a predictions file (outcomes need an observation time). The report says so
(``target_ignored``); with an ``observed_time`` column the same file can be ingested again with
``kind="outcomes"`` to store the labels.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError
from driftline.io import Table, read_table, require_columns
from driftline.store import MODEL_COLUMNS, OUTCOME_TIME, Store
from driftline.values import category_text, parse_bool, parse_times


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


@dataclass
class IngestReport:
    """What happened to every row that came in."""

    files: list[str]
    rows_in: int = 0
    stored: int = 0
    quarantined: int = 0
    duplicates_skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    unseen_categories: dict[str, int] = field(default_factory=dict)
    kind: str = "predictions"
    target_ignored_files: list[str] = field(default_factory=list)
    """Predictions files that also held the target column (its labels were not stored)."""
    target_column: str | None = None
    observed_time_present: bool = False

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
            "unseen_categories": dict(sorted(self.unseen_categories.items())),
            "reconciles": self.reconciles,
            "target_ignored": bool(self.target_ignored_files),
            "target_column": self.target_column if self.target_ignored_files else None,
            "target_ignored_files": list(self.target_ignored_files),
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


def check_predictions(frame: pd.DataFrame, contract: Contract, source: str) -> Checked:
    """Vectorised row checks of a predictions batch against the contract."""
    c = contract
    require_columns(frame, c.row_columns, source)
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    clean = pd.DataFrame(index=frame.index)

    def flag(mask: pd.Series | np.ndarray, text: pd.Series | str) -> None:
        m = np.asarray(mask, dtype=bool) & pd.isna(reason)
        if not m.any():
            return
        if isinstance(text, str):
            reason[m] = text
        else:
            reason[m] = np.asarray(text, dtype=object)[m]

    rid = frame[c.request_id]
    flag(rid.isna() | (rid.astype("string").str.strip() == "").fillna(True), "missing_request_id")
    clean[c.request_id] = rid.astype("string").str.strip()
    ent = frame[c.entity_id]
    flag(ent.isna() | (ent.astype("string").str.strip() == "").fillna(True), "missing_entity_id")
    clean[c.entity_id] = ent.astype("string").str.strip()
    ts = parse_times(frame[c.timestamp], f"{source}: timestamp column {c.timestamp!r}")
    flag(ts.isna(), "bad_timestamp")
    clean[c.timestamp] = ts

    unseen: dict[str, int] = {}
    for name, feat in c.features.items():
        raw = frame[name]
        null = raw.isna()
        if not feat.nullable:
            flag(null, f"null:{name}")
        if feat.type == "numeric":
            vals = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
            vals = vals.astype("float64")
            bad = (~null) & vals.isna()
            flag(bad, "wrong_type:" + name + " (" + raw.map(_show).astype(str) + " is not a number)")
            if feat.range is not None:
                lo, hi = feat.range
                slack = c.range_tolerance * (hi - lo)
                out = vals.notna() & ((vals < lo - slack) | (vals > hi + slack))
                flag(out, f"out_of_range:{name} (" + vals.astype(str) + f" not in [{lo:g}, {hi:g}])")
            clean[name] = vals
        elif feat.type == "boolean":
            vals, bad = parse_bool(raw)
            flag(bad, "wrong_type:" + name + " (" + raw.map(_show).astype(str) + " is not a boolean)")
            clean[name] = vals
        else:
            vals = category_text(raw, strip=True)
            if not feat.nullable:
                flag(vals.isna() & ~null, f"null:{name}")
            if feat.vocabulary:
                # A reviewed alias (contract ``aliases:``) is a known spelling of a vocabulary value;
                # the value is stored as received.
                known = vals.map(feat.aliases).fillna(vals) if feat.aliases else vals
                outside = vals.notna() & ~known.isin(feat.vocabulary).fillna(False).astype(bool)
                if feat.closed:
                    flag(outside, f"unknown_category:{name} (" + vals.astype(str).map(_show) + " not in vocabulary)")
                else:
                    count = int(outside.sum())
                    if count:
                        unseen[name] = count
            clean[name] = vals.astype(object).where(vals.notna(), None)

    for extra in MODEL_COLUMNS:
        if extra not in frame.columns:
            continue
        raw = frame[extra]
        if extra in ("score", "latency_ms"):
            vals = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
            flag(raw.notna() & vals.isna(), f"wrong_type:{extra} (" + raw.map(_show).astype(str) + " is not a number)")
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
            reason_idx = good_idx[conflict]
            reason[reason_idx] = "duplicate_request_id"
            ok = pd.isna(reason)
            ok[good_idx[exact_mask]] = False
    keep = np.asarray(ok, dtype=bool)
    bad = pd.notna(reason)
    bad_pos = np.flatnonzero(bad)
    return Checked(
        good=clean[keep].reset_index(drop=True),
        bad_raw=frame.iloc[bad_pos].reset_index(drop=True),
        bad_reasons=[str(r) for r in reason[bad_pos]],
        bad_rows=[int(i) + 1 for i in bad_pos],
        exact_duplicates=exact,
        unseen=unseen,
    )


def check_outcomes(frame: pd.DataFrame, contract: Contract, source: str) -> Checked:
    """Row checks of an outcomes batch: request id, label and observation time."""
    c = contract
    require_columns(frame, [c.request_id, c.target.name, OUTCOME_TIME], source)
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    rid = frame[c.request_id].astype("string").str.strip()
    reason[(rid.isna() | (rid == "")).fillna(True).to_numpy()] = "missing_request_id"
    label = frame[c.target.name]
    m = label.isna().to_numpy() & pd.isna(reason)
    reason[m] = f"null:{c.target.name}"
    t = parse_times(frame[OUTCOME_TIME], f"{source}: column {OUTCOME_TIME!r}")
    m = t.isna().to_numpy() & pd.isna(reason)
    reason[m] = "bad_timestamp"
    clean = pd.DataFrame({c.request_id: rid})
    clean[c.entity_id] = frame[c.entity_id].astype("string") if c.entity_id in frame.columns else None
    clean[c.target.name] = label.map(_label_text)
    clean[OUTCOME_TIME] = t
    ok = pd.isna(reason)
    dup = clean[c.request_id].duplicated(keep="first").to_numpy() & ok
    exact_mask = dup & clean.astype(str).duplicated(keep="first").to_numpy()
    reason[dup & ~exact_mask] = "duplicate_request_id"
    keep = pd.isna(reason) & ~exact_mask
    bad_pos = np.flatnonzero(pd.notna(reason))
    return Checked(
        good=clean[keep].reset_index(drop=True),
        bad_raw=frame.iloc[bad_pos].reset_index(drop=True),
        bad_reasons=[str(r) for r in reason[bad_pos]],
        bad_rows=[int(i) + 1 for i in bad_pos],
        exact_duplicates=int(exact_mask.sum()),
    )


def _label_text(v: Any) -> str:
    """Labels stored as text; integral floats lose their '.0' so 1.0 and 1 agree."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    return str(v)


def detect_kind(frame: pd.DataFrame, contract: Contract) -> str:
    """'outcomes' when the file has a label and observation time but no features."""
    has_features = any(f in frame.columns for f in contract.features)
    if not has_features and contract.target.name in frame.columns and OUTCOME_TIME in frame.columns:
        return "outcomes"
    return "predictions"


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


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
    with _open_text(Path(path)) as fh:
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


def _file_rows(table: Table, result: Checked) -> list[int | None]:
    """Quarantine row numbers of the checked rows: CSV file lines, Parquet 1-based rows."""
    if not result.bad_rows or not _is_csv(table.path):
        return list(result.bad_rows)
    lines = csv_row_lines(table.path, len(table.frame), [b.line for b in table.bad_lines])
    if lines is None:
        return [None] * len(result.bad_rows)
    return [None if r is None else int(lines[r - 1]) for r in result.bad_rows]


def ingest_files(paths: Sequence[str | Path], contract: Contract, store: Store, kind: str = "auto") -> IngestReport:
    """Check every file first, then write all of them in one transaction."""
    if not paths:
        raise InputError("no files given")
    checked: list[tuple[str, str, Checked, int]] = []
    ignored: list[str] = []
    observed_time = False
    for path in paths:
        table = read_table(path)
        source = str(table.path)
        if len(table.frame) == 0 and not table.bad_lines:
            raise InputError(f"{source}: no rows")
        k = detect_kind(table.frame, contract) if kind == "auto" else kind
        if k not in ("predictions", "outcomes"):
            raise InputError(f"unknown kind {k!r} (expected predictions, outcomes or auto)")
        check = check_predictions if k == "predictions" else check_outcomes
        result = check(table.frame, contract, source)
        result.bad_rows = _file_rows(table, result)
        if table.bad_lines:
            extra = pd.DataFrame({"line": [b.raw for b in table.bad_lines]})
            result.bad_raw = pd.concat([result.bad_raw, extra], ignore_index=True)
            result.bad_reasons += [f"unparseable_line ({b.reason})" for b in table.bad_lines]
            result.bad_rows += [b.line for b in table.bad_lines]
            order = sorted(
                range(len(result.bad_rows)), key=lambda i: (result.bad_rows[i] is None, result.bad_rows[i] or 0)
            )
            result.bad_raw = result.bad_raw.iloc[order].reset_index(drop=True)
            result.bad_reasons = [result.bad_reasons[i] for i in order]
            result.bad_rows = [result.bad_rows[i] for i in order]
        if k == "predictions" and contract.target.name in table.frame.columns:
            ignored.append(source)
            observed_time = observed_time or OUTCOME_TIME in table.frame.columns
        checked.append((source, k, result, len(table.frame) + len(table.bad_lines)))

    kinds = {k for _, k, _, _ in checked}
    report = IngestReport(
        files=[s for s, _, _, _ in checked],
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        target_ignored_files=ignored,
        target_column=contract.target.name,
        observed_time_present=observed_time,
    )
    store.create()
    reasons: Counter[str] = Counter()
    with store.transaction() as conn:
        for source, k, result, rows_in in checked:
            append = store.append_predictions if k == "predictions" else store.append_outcomes
            res = append(result.good, conn=conn)
            q = store.quarantine(result.bad_raw, result.bad_reasons, source, conn=conn, row_numbers=result.bad_rows)
            report.rows_in += rows_in
            report.stored += res.stored
            report.duplicates_skipped += res.duplicates_skipped + result.exact_duplicates
            report.quarantined += q
            reasons.update(r.split(" (", 1)[0] for r in result.bad_reasons)
            for name, count in result.unseen.items():
                report.unseen_categories[name] = report.unseen_categories.get(name, 0) + count
    report.by_reason = dict(reasons)
    if not report.reconciles:  # a bug, not bad input: say so loudly
        raise AssertionError(f"ingest counts do not reconcile: {report.to_dict()}")
    return report
