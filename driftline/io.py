"""Reading user data files (Parquet or CSV) with errors that name the file and line."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from driftline.errors import InputError

_SKIP = re.compile(r"Skipping line (\d+): (.*)")


@dataclass
class BadLine:
    """A CSV line the parser could not split into the header's columns."""

    line: int
    raw: str
    reason: str


@dataclass
class Table:
    """A frame read from a file, plus the raw lines that could not be parsed."""

    path: Path
    frame: pd.DataFrame
    bad_lines: list[BadLine] = field(default_factory=list)


def _kind(path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return "parquet"
    if suffix.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise InputError(f"{path}: unsupported file type (expected .parquet or .csv)")


def read_table(path: str | Path, columns: list[str] | None = None) -> Table:
    """Read a Parquet or CSV file; raise InputError (one line) when it cannot be used.

    Broken CSV lines (wrong field count) do not stop the read: they come back in
    ``bad_lines`` so ingest can quarantine them and the counts still reconcile.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a file")
    kind = _kind(p)
    bad: list[BadLine] = []
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p, columns=columns)
        else:
            if p.stat().st_size == 0:
                raise InputError(f"{p}: file is empty")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = pd.read_csv(p, usecols=columns, on_bad_lines="warn", low_memory=False)
            for w in caught:
                for m in _SKIP.finditer(str(w.message)):
                    bad.append(BadLine(line=int(m.group(1)), raw="", reason=m.group(2).strip()))
            if bad:
                wanted = {b.line for b in bad}
                with p.open(errors="replace") as fh:
                    for i, text in enumerate(fh, start=1):
                        if i in wanted:
                            for b in bad:
                                if b.line == i:
                                    b.raw = text.rstrip("\n")
    except InputError:
        raise
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: cannot read as {kind}: {first}") from None
    except Exception as e:  # pyarrow raises its own types for corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: cannot read as {kind}: {first}") from None
    return Table(path=p, frame=frame, bad_lines=bad)


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raise InputError naming the missing columns, if any."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing required column(s): {', '.join(missing)}")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write Parquet or CSV by suffix, creating the folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if _kind(p) == "parquet":
        frame.to_parquet(p, index=False)
    else:
        frame.to_csv(p, index=False)
    return p
