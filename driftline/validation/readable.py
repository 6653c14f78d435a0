"""Can a file's columns be read as their contract types? The check every data command runs first.

``validate``, ``skew``, ``profile`` and ``drift`` read whole files the user brings. A column
that cannot be read as its contract type — text or a number too large for a float in a
numeric feature, a value that is not a boolean in a boolean feature, a list or mapping in any
contract column — would otherwise become silent nulls (a drift of nothing, or of everything)
or a traceback. Here it is one line and exit 2 (:class:`~driftline.errors.InputError`) naming
the file, the column, how many values, and the first bad lines (CSV: the file's line, header
= line 1) or rows (Parquet: 1-based), read as ingest reads them (:mod:`driftline.ingest`).

Columns the contract does not name are listed by :func:`unknown_columns` (commands print them
as a note, or refuse them with ``--strict-columns``); a missing column's message names them too,
since an unknown column next to a missing one is usually a rename.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import InputError

SHOWN_ROWS = 3
"""How many bad lines (rows) and example values a message names."""
_INTERNAL_PREFIX = "driftline_"


@dataclass(frozen=True)
class Unreadable:
    """One contract column with values that cannot be read as its type."""

    column: str
    expected: str
    """What the column must hold: ``numeric``, ``boolean`` or ``one value``."""
    positions: tuple[int, ...]
    """0-based positions of the bad values in the frame (all of them)."""
    examples: tuple[Any, ...]


_WHY = {
    "numeric": ("is not a number a float can hold", "are not numbers a float can hold"),
    "boolean": ("is not a boolean", "are not booleans"),
    "one value": ("is a list or mapping, not one value", "are lists or mappings, not one value"),
}


def _show(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _mask_problem(name: str, expected: str, mask: np.ndarray, values: pd.Series) -> Unreadable | None:
    pos = np.flatnonzero(mask)
    if not len(pos):
        return None
    examples = tuple(values.iloc[pos[:SHOWN_ROWS]].tolist())
    return Unreadable(name, expected, tuple(int(p) for p in pos), examples)


def contract_kinds(contract: Contract) -> dict[str, str]:
    """Column -> what it must hold: each feature's type, ``any`` (one value) for ids, time and target."""
    c = contract
    kinds = dict.fromkeys([c.request_id, c.entity_id, c.timestamp, c.target.name], "any")
    kinds.update({name: feat.type for name, feat in c.features.items()})
    return kinds


def unreadable_columns(
    frame: pd.DataFrame, kinds: Contract | Mapping[str, str], columns: Collection[str] | None = None
) -> list[Unreadable]:
    """Columns of ``frame`` holding values that cannot be read as their kind, in ``kinds`` order.

    ``kinds`` is a contract or a mapping column -> ``numeric``/``boolean``/``categorical``/``any``;
    ``columns`` limits the check (default: every such column the frame has). Missing values are
    never unreadable; the not-null rules are the validation suite's business.
    """
    from driftline.ingest import _nested, _to_float
    from driftline.values import parse_bool

    wanted = contract_kinds(kinds) if isinstance(kinds, Contract) else dict(kinds)
    names = [n for n in wanted if n in frame.columns and (columns is None or n in set(columns))]
    out: list[Unreadable] = []
    for name in names:
        raw = frame[name]
        nested = _nested(raw).to_numpy(dtype=bool)
        problem = _mask_problem(name, "one value", nested, raw)
        if problem is None:
            present = raw.notna().to_numpy(dtype=bool)
            if wanted[name] == "numeric":
                bad = present & _to_float(raw).isna().to_numpy(dtype=bool)
                problem = _mask_problem(name, "numeric", bad, raw)
            elif wanted[name] == "boolean":
                _, bad_mask = parse_bool(raw)
                problem = _mask_problem(name, "boolean", bad_mask.to_numpy(dtype=bool), raw)
        if problem is not None:
            out.append(problem)
    return out


def _where(table_path: Path, frame_rows: int, bad_lines: Sequence[int], positions: Sequence[int]) -> str:
    """``line 7, 9`` (CSV lines) or ``row 3, 4`` (Parquet rows) for the first positions."""
    from driftline.ingest import _is_csv, csv_row_lines

    first = list(positions[:SHOWN_ROWS])
    if _is_csv(table_path):
        lines = csv_row_lines(table_path, frame_rows, bad_lines)
        if lines is not None:
            word = "line" if len(first) == 1 else "lines"
            return f"{word} " + ", ".join(str(int(lines[p])) for p in first)
    word = "row" if len(first) == 1 else "rows"
    return f"{word} " + ", ".join(str(p + 1) for p in first)


def describe(source: str | Path, problem: Unreadable, where: str, *, at_least: bool = False) -> str:
    """One line: file, column, what it must hold, how many values break it, where and which."""
    n = len(problem.positions)
    kind = "a list or mapping" if problem.expected == "one value" else problem.expected
    values = "value" if n == 1 else "values"
    why = _WHY[problem.expected][0 if n == 1 else 1]
    head = f"{source}: column {problem.column!r} cannot be read as {kind}"
    if problem.expected == "one value":
        head = f"{source}: column {problem.column!r} must hold one value per row"
    return (
        f"{head}: {'at least ' if at_least else ''}{n:,} {values} {why}, first at {where} "
        f"({', '.join(_show(x) for x in problem.examples)})"
    )


def check_readable(
    table: Any, contract: Contract | Mapping[str, str], columns: Collection[str] | None = None, *, coerce: bool = True
) -> pd.DataFrame:
    """``table.frame`` when every contract column reads as its type; InputError (one line) for the first that does not.

    ``table`` is a :class:`driftline.io.Table` (its path and broken lines place the bad rows).
    With ``coerce``, numeric features held as text or objects come back as float64, the way
    ingest stores them, so what follows never meets text in a numeric column. The contract's
    ``null_values`` are read as missing first (:meth:`~driftline.contract.Contract.apply_null_values`).
    """
    frame = contract.apply_null_values(table.frame) if isinstance(contract, Contract) else table.frame
    problems = unreadable_columns(frame, contract, columns)
    if problems:
        p = problems[0]
        where = _where(Path(table.path), len(frame), [b.line for b in table.bad_lines], p.positions)
        raise InputError(describe(table.path, p, where))
    if not coerce:
        return frame
    from driftline.ingest import _to_float

    kinds = contract_kinds(contract) if isinstance(contract, Contract) else contract
    out = frame
    for name, kind in kinds.items():
        if kind != "numeric" or name not in frame.columns or pd.api.types.is_numeric_dtype(frame[name].dtype):
            continue
        if out is frame:
            out = frame.copy()
        out[name] = _to_float(frame[name])
    return out


def known_columns(contract: Contract, also: Collection[str] = ()) -> set[str]:
    """Every column a driftline file may carry for ``contract``: contract columns, model log columns, ``also``."""
    from driftline.store import LOG_COLUMNS

    c = contract
    known = {*c.row_columns, c.target.name, *LOG_COLUMNS, *also}
    if c.segment:
        known.add(c.segment)
    return known


def unknown_columns(columns: Sequence[str], contract: Contract, also: Collection[str] = ()) -> list[str]:
    """Columns the contract (and driftline's own log and test-set columns) do not name, in file order."""
    known = known_columns(contract, also)
    return [str(n) for n in columns if str(n) not in known and not str(n).startswith(_INTERNAL_PREFIX)]


def missing_message(source: str | Path, missing: Sequence[str], columns: Sequence[str], contract: Contract) -> str:
    """``<file>: missing feature column(s): plan; columns not in the contract: plan_type`` (one line)."""
    text = f"{source}: missing feature column(s): {', '.join(missing)}"
    unknown = unknown_columns(columns, contract)
    if unknown:
        text += f"; columns not in the contract: {', '.join(unknown[:10])}" + (" …" if len(unknown) > 10 else "")
        text += " (renamed? add it to the contract or rename the column)"
    return text


def note_unknown(
    source: str | Path, columns: Sequence[str], contract: Contract, *, strict: bool, also: Collection[str] = ()
) -> str | None:
    """The note for columns the contract does not name (None when there are none); InputError when ``strict``."""
    unknown = unknown_columns(columns, contract, also)
    if not unknown:
        return None
    shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
    if strict:
        raise InputError(f"{source}: column(s) not in the contract: {shown} (--strict-columns)")
    return f"note: {source}: ignored {len(unknown)} column(s) not in the contract: {shown}"


_NUMERIC_ARROW = ("int", "uint", "float", "double", "halffloat", "decimal", "bool", "null")


def check_parquet_readable(
    path: Path, kinds: Contract | Mapping[str, str], columns: Collection[str], batch_size: int = 262_144
) -> list[str]:
    """Check a Parquet file's contract columns without reading it whole; its column names.

    Lists, structs and maps fail from the schema; a numeric or boolean feature stored as text
    is scanned batch by batch (only that column) and fails at its first unreadable value.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except Exception as e:  # pyarrow raises its own types for corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: cannot read as parquet: {first[:200]}") from None
    names = list(schema.names)
    wanted = contract_kinds(kinds) if isinstance(kinds, Contract) else dict(kinds)
    for name in [n for n in columns if n in names]:
        kind = schema.field(name).type
        if pa.types.is_nested(kind):
            raise InputError(
                f"{path}: column {name!r} must hold one value per row: it holds lists or mappings (Parquet type {kind})"
            )
        if wanted.get(name) not in ("numeric", "boolean") or str(kind).startswith(_NUMERIC_ARROW):
            continue
        offset = 0
        for batch in pf.iter_batches(batch_size=batch_size, columns=[name]):
            part = batch.column(0).to_pandas()
            problems = unreadable_columns(pd.DataFrame({name: part}), wanted, [name])
            if problems:
                p = problems[0]
                shifted = Unreadable(p.column, p.expected, tuple(offset + q for q in p.positions), p.examples)
                rows = ", ".join(str(q + 1) for q in shifted.positions[:SHOWN_ROWS])
                word = "row" if len(shifted.positions[:SHOWN_ROWS]) == 1 else "rows"
                raise InputError(describe(path, shifted, f"{word} {rows}", at_least=True))
            offset += len(part)
    return names
