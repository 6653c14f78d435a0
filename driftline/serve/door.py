"""The door: a request body becomes checked rows, or a list of problems that names each field.

A body is one record (``{feature: value, ..., entity id, optional request id, optional event
time}``) or ``{"records": [...]}``. A missing request id gets a fresh uuid4 hex, a missing event
time the time of the request. Keys the contract does not know are ignored.

The row checks are :func:`driftline.ingest.check_predictions`, the very ones ingest applies to
files. A body of plainly good records is admitted by a quick per-record check that builds no
DataFrame (:class:`Door`; it admits only what the full check admits, with the same values).
Anything else takes the full check, which reports the first problem of a row, so a bad row is
checked again with each field already reported set to a harmless value, until every problem of
the row is named.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError
from driftline.ingest import _INTEGRAL_TEXT, CONFLICT, CONFLICT_REASONS, MAX_FIELD_CHARS, check_predictions
from driftline.values import parse_times

MAX_BODY_BYTES = 1024 * 1024
MAX_RECORDS = 1000

# ingest's reason prefix -> the rule a 422 names
_RULES = {
    "missing_request_id": "required",
    "missing_entity_id": "required",
    "bad_timestamp": "type",
    "null": "null",
    "wrong_type": "type",
    "out_of_range": "range",
    "unknown_category": "vocabulary",
    "duplicate_request_id": "duplicate",  # the within-batch key of older versions
    CONFLICT: "duplicate",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which record, which field, which rule, in words."""

    field: str
    rule: str
    message: str
    record: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "message": self.message}
        if self.record is not None:
            out["record"] = self.record
        return out


class DoorError(Exception):
    """A request refused at the door: HTTP status and the problems found."""

    def __init__(self, status: int, problems: Sequence[Problem]) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))


@dataclass(frozen=True)
class Admitted:
    """Rows that passed the door, as ingest cleans them (one dict per record), and whether the body was one record.

    Missing values are None. ``rows`` is the same as a DataFrame, in the contract's row columns.
    """

    records: list[dict[str, Any]]
    single: bool
    columns: tuple[str, ...] = ()

    @property
    def rows(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.records, columns=list(self.columns) or None)


def _too_large(message: str) -> DoorError:
    return DoorError(413, [Problem("body", "size", message)])


def records_of(body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_records: int = MAX_RECORDS) -> tuple[list, bool]:
    """The records of a JSON body and whether it was a single record; DoorError when unusable."""
    if len(body) > max_bytes:
        raise _too_large(f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise DoorError(422, [Problem("body", "json", f"body is not valid JSON ({e})")]) from None
    if isinstance(data, dict) and "records" in data:
        records, single = data["records"], False
        if not isinstance(records, list):
            raise DoorError(422, [Problem("records", "type", "'records' must be a list of objects")])
    elif isinstance(data, dict):
        records, single = [data], True
    else:
        raise DoorError(422, [Problem("body", "type", 'body must be a JSON object or {"records": [...]}')])
    if not records:
        raise DoorError(422, [Problem("records", "required", "'records' is empty")])
    if len(records) > max_records:
        raise _too_large(f"{len(records)} records; the limit is {max_records} per request")
    return records, single


def _placeholder(contract: Contract, name: str) -> Any:
    """A value that passes the checks of column ``name`` (used to look past a reported problem)."""
    c = contract
    if name in (c.request_id, c.entity_id):
        return "placeholder"
    if name == c.timestamp:
        return pd.Timestamp("2000-01-01")
    f = c.features[name]
    if f.type == "numeric":
        return float(f.range[0]) if f.range else 0.0
    if f.type == "boolean":
        return False
    return f.vocabulary[0] if f.vocabulary else "placeholder"


def _times(values: list[Any], what: str) -> tuple[pd.Series, list[bool]]:
    """Event times as datetime64[us] and, per value, whether it could not be read.

    Numbers (Unix time) and text are parsed apart, so one record's style does not decide another's.
    """
    out = pd.Series(pd.NaT, index=range(len(values)), dtype="datetime64[us]")
    bad = [False] * len(values)
    groups: dict[str, list[int]] = {"number": [], "text": []}
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            bad[i] = True
        else:
            groups["text" if isinstance(v, str) else "number"].append(i)
    for idx in groups.values():
        if not idx:
            continue
        try:
            parsed = parse_times(pd.Series([values[i] for i in idx], dtype=object), what)
        except InputError:
            for i in idx:
                bad[i] = True
            continue
        for i, t in zip(idx, parsed, strict=True):
            out.iloc[i] = t
            bad[i] = bad[i] or pd.isna(t)
    return out, bad


def admit(
    body: bytes,
    contract: Contract,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    max_records: int = MAX_RECORDS,
    now: datetime | None = None,
) -> Admitted:
    """Check a request body against ``contract`` (see :class:`Door`, built here for one call)."""
    return Door(contract, max_bytes=max_bytes, max_records=max_records).admit(body, now=now)


class Door:
    """The door for one contract: what is read from the contract once, then :meth:`admit` per request.

    A body whose every record is plainly good (JSON numbers in range, known or open categories as
    text, true/false, ISO-8601 times, text or integer ids) is admitted by a per-record check that
    builds no DataFrame. Anything else — a problem, or a value whose reading takes ingest's full
    rules (Unix times, numbers as text, ``"yes"`` for a boolean) — goes through
    :func:`driftline.ingest.check_predictions`, which stays the one authority: the quick check
    only ever admits a record that check admits, with the same cleaned values (a property test
    holds it to that).
    """

    def __init__(self, contract: Contract, *, max_bytes: int = MAX_BODY_BYTES, max_records: int = MAX_RECORDS) -> None:
        c = contract
        self.contract = c
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.columns = tuple(c.row_columns)
        self._fields: list[tuple[str, str, bool, Any, frozenset[str] | None, dict[str, str]]] = []
        for name, f in c.features.items():
            bounds = None
            if f.type == "numeric" and f.range is not None:
                lo, hi = f.range
                slack = c.range_tolerance * (hi - lo)
                bounds = (lo - slack, hi + slack)
            vocab = frozenset(f.vocabulary) if f.type == "categorical" and f.vocabulary and f.closed else None
            self._fields.append((name, f.type, f.nullable, bounds, vocab, dict(f.aliases or {})))

    def admit(self, body: bytes, *, now: datetime | None = None) -> Admitted:
        """The rows ingest would store for ``body``, or DoorError (413 too large, 422 invalid)."""
        records, single = records_of(body, max_bytes=self.max_bytes, max_records=self.max_records)
        stamp = datetime.now(UTC) if now is None else now
        stamp = stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
        quick: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rec in records:
            row = self._quick(rec, stamp) if isinstance(rec, dict) else None
            if row is None or row[self.contract.request_id] in seen:
                break
            seen.add(row[self.contract.request_id])
            quick.append(row)
        else:
            return Admitted(records=quick, single=single, columns=self.columns)
        return _admit_checked(records, single, self.contract, pd.Timestamp(stamp))

    def _quick(self, rec: dict[str, Any], stamp: datetime) -> dict[str, Any] | None:
        """The cleaned row of a plainly good record, or None to leave it to the full check."""
        c = self.contract
        rid = rec.get(c.request_id)
        rid = uuid.uuid4().hex if rid is None else _quick_id(rid)
        ent = _quick_id(rec.get(c.entity_id))
        if rid is None or ent is None:
            return None
        t = rec.get(c.timestamp)
        when = stamp if t is None else _quick_time(t)
        if when is None:
            return None
        row: dict[str, Any] = {c.request_id: rid, c.entity_id: ent, c.timestamp: when}
        for name, kind, nullable, bounds, vocab, aliases in self._fields:
            v = rec.get(name)
            if v is None:
                if not nullable:
                    return None
                row[name] = None
                continue
            if kind == "numeric":
                if isinstance(v, bool) or not isinstance(v, int | float):
                    return None
                if isinstance(v, int) and abs(v) > _EXACT_INT:
                    return None
                x = float(v)
                if not math.isfinite(x) or (bounds is not None and not bounds[0] <= x <= bounds[1]):
                    return None
                row[name] = x
            elif kind == "boolean":
                if not isinstance(v, bool):
                    return None
                row[name] = v
            else:
                if isinstance(v, str):
                    if len(v) > MAX_FIELD_CHARS:
                        return None
                    text = v.strip()
                    if not text:
                        if not nullable:
                            return None
                        row[name] = None
                        continue
                elif isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _EXACT_INT:
                    text = str(v)
                else:
                    return None
                if vocab is not None and aliases.get(text, text) not in vocab:
                    return None
                row[name] = text
        return row


_EXACT_INT = 2**53
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?")


def _quick_id(v: Any) -> str | None:
    """An id as ingest's canonical text when that is plain (text or an integer), else None."""
    if isinstance(v, str):
        text = v.strip()
        if not text or len(v) > MAX_FIELD_CHARS:
            return None
        return text.split(".", 1)[0] if _INTEGRAL_TEXT.match(text) else text
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _EXACT_INT:
        return str(v)
    return None


def _quick_time(v: Any) -> datetime | None:
    """An ISO-8601 time as naive UTC, when it is one and its year is 1970..2100; else None."""
    if not isinstance(v, str) or not _ISO_TIME.fullmatch(v):
        return None
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t if 1970 <= t.year <= 2100 else None


def _admit_checked(records: list[Any], single: bool, contract: Contract, stamp: pd.Timestamp) -> Admitted:
    """The full check (ingest's rules, every problem named): Admitted, or DoorError 422."""
    c = contract
    where = (lambda i: None) if single else (lambda i: i)
    problems: list[Problem] = []
    required = [c.entity_id, *(n for n, f in c.features.items() if not f.nullable)]
    rows: list[dict[str, Any]] = []
    given_times: list[Any] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(Problem("record", "type", f"record {i} is not a JSON object", where(i)))
            rows.append({})
            given_times.append(None)
            continue
        for name in required:
            if name not in rec:
                problems.append(Problem(name, "required", f"{name!r} is required", where(i)))
        for name in (c.request_id, c.entity_id, c.timestamp, *c.features):
            v = rec.get(name)
            if isinstance(v, dict | list):
                problems.append(
                    Problem(name, "type", f"{name!r} must be a single value, not a JSON {type(v).__name__}", where(i))
                )
            elif name in c.features and c.features[name].type == "numeric" and isinstance(v, bool):
                problems.append(Problem(name, "type", f"{name!r} must be a number, not {json.dumps(v)}", where(i)))
        row = {n: rec.get(n) for n in (c.entity_id, *c.features)}
        rid = rec.get(c.request_id)
        row[c.request_id] = uuid.uuid4().hex if rid is None else rid
        rows.append(row)
        given_times.append(rec.get(c.timestamp))
    if problems:
        raise DoorError(422, problems)

    present = [i for i, t in enumerate(given_times) if t is not None]
    parsed, bad_time = _times([given_times[i] for i in present], f"field {c.timestamp!r}")
    times = [stamp] * len(rows)
    for k, i in enumerate(present):
        if bad_time[k]:
            problems.append(
                Problem(c.timestamp, "type", f"{c.timestamp!r}: {given_times[i]!r} is not a time", where(i))
            )
        else:
            times[i] = parsed.iloc[k]
    ids = [r[c.request_id] for r in rows]
    seen: dict[Any, int] = {}
    for i, rid in enumerate(ids):
        if isinstance(rid, str | int) and not isinstance(rid, bool) and rid in seen:
            problems.append(
                Problem(c.request_id, "duplicate", f"request id {rid!r} repeats record {seen[rid]}", where(i))
            )
        seen.setdefault(rid, i)
    frame = pd.DataFrame(rows, columns=c.row_columns[:2] + list(c.features))
    frame[c.timestamp] = pd.Series(times, dtype="datetime64[us]")
    frame = frame[c.row_columns]
    if problems:
        named = {0 if p.record is None else p.record for p in problems if p.rule == "duplicate"}
        raise DoorError(422, problems + _row_problems(frame, contract, where, named))
    checked = check_predictions(frame, contract, "request")
    if len(checked.good) != len(frame):
        raise DoorError(422, _row_problems(frame, contract, where) or [Problem("records", "invalid", "bad records")])
    good = checked.good.astype(object)
    rows = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in good.to_dict("records")]
    for r in rows:
        r[c.timestamp] = pd.Timestamp(r[c.timestamp]).to_pydatetime()
    return Admitted(records=rows, single=single, columns=tuple(c.row_columns))


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _row_problems(
    frame: pd.DataFrame,
    contract: Contract,
    where: Any,
    named_duplicates: set[int] = frozenset(),  # type: ignore[assignment]
) -> list[Problem]:
    """Every problem check_predictions finds, by record: re-check bad rows with reported fields fixed."""
    c = contract
    problems: list[Problem] = []
    todo = frame.reset_index(drop=True).astype(object)
    positions = list(range(len(todo)))
    for _ in range(len(c.row_columns) + 1):
        if not positions:
            break
        sub = todo.iloc[positions].reset_index(drop=True)
        sub[c.timestamp] = pd.to_datetime(sub[c.timestamp])
        result = check_predictions(sub, c, "request")
        still: list[int] = []
        for reason, pos in zip(result.bad_reasons, result.bad_rows, strict=True):
            i = positions[pos - 1]
            kind, _, rest = reason.partition(":")
            kind = kind.split(" ", 1)[0]
            if kind in CONFLICT_REASONS:
                # ids equal once canonical (1 and "1"); those equal as sent were named by admit already
                if i not in named_duplicates:
                    problems.append(
                        Problem(c.request_id, "duplicate", "request id repeats within the request", where(i))
                    )
                continue
            name, _, detail = rest.partition(" (")
            name = name.strip() or {
                "missing_request_id": c.request_id,
                "missing_entity_id": c.entity_id,
                "bad_timestamp": c.timestamp,
            }.get(kind, "record")
            detail = detail.removesuffix(")")
            if kind == "null":
                message = f"{name!r} must not be null"
            elif kind.startswith("missing_"):
                message = f"{name!r} must not be empty"
            else:
                message = f"{name!r}: {detail or kind.replace('_', ' ')}"
            problems.append(Problem(name, _RULES.get(kind, kind), message, where(i)))
            todo.at[i, name] = _placeholder(c, name)
            still.append(i)
        positions = still
    return problems
