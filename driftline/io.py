"""Reading user data files (Parquet or CSV) with errors that name the file and line.

Every input is bounded and read the same way:

- Only regular files are read (a FIFO or device is refused: it could block or never end).
- A file may hold at most :func:`max_input_bytes` bytes of data (1 GiB unless
  ``DRIFTLINE_MAX_INPUT_BYTES`` says otherwise): the file size, the decompressed size of a
  ``.csv.gz``, ``.csv.bz2`` or ``.csv.zip`` (counted while reading, so a compression bomb stops
  at the limit), or a Parquet file's uncompressed size from its footer.
- CSV is UTF-8 (a leading byte-order mark is dropped); invalid UTF-8 refuses the file naming
  the line and column. Only an empty field is missing: ``NA``, ``None``, ``null`` and ``NaN``
  are text like any other (``NA`` is Namibia's country code), so a numeric column holding them
  quarantines those rows as ``wrong_type``, unless the contract lists them as nulls
  (``null_values:``, applied by ingest and the data commands after reading).
- A header that names the same column twice is refused (pandas would rename one ``x.1``).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from driftline.errors import ConfigError, InputError

_SKIP = re.compile(r"Skipping line (\d+): (.*)")
DEFAULT_MAX_INPUT_BYTES = 1 << 30
MAX_INPUT_ENV = "DRIFTLINE_MAX_INPUT_BYTES"
_COMPRESSED = (".gz", ".bz2", ".zip")


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


class InputTooLargeError(InputError):
    """An input holds more bytes than :func:`max_input_bytes` allows."""


def max_input_bytes() -> int:
    """The data size limit: ``DRIFTLINE_MAX_INPUT_BYTES`` (a positive integer) or 1 GiB."""
    text = os.environ.get(MAX_INPUT_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_INPUT_ENV} must be a positive number of bytes, got {text[:40]!r}")
    return value


def check_input_file(path: str | Path) -> Path:
    """``path`` if it is a regular file within the size limit; InputError (one line) otherwise."""
    p = Path(path)
    from driftline.settings import regular_file

    try:
        regular_file(p, "file")
    except ConfigError as e:
        raise InputError(str(e)) from None
    limit = max_input_bytes()
    if p.stat().st_size > limit:
        raise InputTooLargeError(f"{p}: file is larger than the input limit of {limit:,} bytes ({MAX_INPUT_ENV})")
    return p


def _kind(path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return "parquet"
    if suffix.endswith((".csv", ".txt")) or suffix.endswith(tuple(f".csv{z}" for z in _COMPRESSED)):
        return "csv"
    raise InputError(f"{path}: unsupported file type (expected .parquet, .csv, .csv.gz, .csv.bz2 or .csv.zip)")


class _Bounded(io.RawIOBase):
    """A binary stream that raises :class:`InputTooLargeError` once more than ``limit`` bytes are read."""

    def __init__(self, inner: IO[bytes], limit: int, name: str) -> None:
        self._inner, self._limit, self._name, self._seen = inner, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._limit:
            raise InputTooLargeError(
                f"{self._name}: decompressed data is larger than the input limit of {self._limit:,} bytes "
                f"({MAX_INPUT_ENV})"
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _open_member(path: Path) -> IO[bytes]:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".zip":
        zf = zipfile.ZipFile(path)
        names = [i for i in zf.infolist() if not i.is_dir()]
        if len(names) != 1:
            zf.close()
            raise InputError(f"{path}: a .zip input must hold exactly one file, found {len(names)}")
        return zf.open(names[0])
    return path.open("rb")


@contextmanager
def open_binary(path: str | Path) -> Iterator[IO[bytes]]:
    """The file's data bytes (decompressed for .gz/.bz2/.zip), stopping at the input limit."""
    p = Path(path)
    try:
        inner = _open_member(p)
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{p}: cannot read as csv: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    with io.BufferedReader(_Bounded(inner, max_input_bytes(), str(p)), 1 << 16) as fh:
        yield fh


@contextmanager
def open_text(path: str | Path) -> Iterator[IO[str]]:
    """The file as UTF-8 text, invalid bytes replaced (for counting and quoting lines)."""
    with open_binary(path) as fh, io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="") as text:
        yield text


def _utf8_error(path: Path) -> InputError:
    """The first line with invalid UTF-8, its column and the bad byte, as one line."""
    header: list[str] = []
    with open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                before = raw[: e.start].decode("utf-8", errors="replace")
                fields = next(csv.reader([before]), [])
                index = max(len(fields) - 1, 0)  # the field being read when the bad byte came
                col = header[index] if index < len(header) else f"#{index + 1}"
                byte = raw[e.start : e.start + 1].hex()
                return InputError(
                    f"{path}: line {number}, column {col!r}: invalid UTF-8 (byte 0x{byte}); save the file as UTF-8"
                )
            if not header and text.strip():
                header = next(csv.reader([text]), [])
    return InputError(f"{path}: not valid UTF-8")


def _header(path: Path) -> list[str]:
    with open_text(path) as fh:
        for text in fh:
            if text.strip():
                return next(csv.reader([text]), [])
    return []


def _refuse_duplicate_names(path: Path, names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{path}: {where}column {name!r} appears more than once; rename one")
        seen.add(name)


def _read_parquet(p: Path, columns: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(p).metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    limit = max_input_bytes()
    if size > limit:
        raise InputTooLargeError(
            f"{p}: uncompressed data is larger than the input limit of {limit:,} bytes ({MAX_INPUT_ENV})"
        )
    _refuse_duplicate_names(p, [meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns)], "")
    return pd.read_parquet(p, columns=columns)


def read_table(path: str | Path, columns: list[str] | None = None, text_columns: list[str] = ()) -> Table:
    """Read a Parquet or CSV file; raise InputError (one line) when it cannot be used.

    Broken CSV lines (wrong field count) do not stop the read: they come back in
    ``bad_lines`` so ingest can quarantine them and the counts still reconcile. CSV columns in
    ``text_columns`` are read as text, as written (ids keep their digits: no float rounding).
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise InputError(f"{p}: file not found")
    kind = _kind(p)
    check_input_file(p)
    bad: list[BadLine] = []
    try:
        if kind == "parquet":
            frame = _read_parquet(p, columns)
        else:
            if p.stat().st_size == 0:
                raise InputError(f"{p}: file is empty")
            try:
                names = _header(p)
                _refuse_duplicate_names(p, names, "line 1: ")
                dtype = {c: str for c in text_columns if c in names} or None
                with warnings.catch_warnings(record=True) as caught, open_binary(p) as fh:
                    warnings.simplefilter("always")
                    frame = pd.read_csv(
                        fh,
                        usecols=columns,
                        on_bad_lines="warn",
                        low_memory=False,
                        encoding="utf-8-sig",
                        keep_default_na=False,
                        na_values=[""],
                        dtype=dtype,
                    )
            except UnicodeDecodeError:
                raise _utf8_error(p) from None
            for w in caught:
                for m in _SKIP.finditer(str(w.message)):
                    bad.append(BadLine(line=int(m.group(1)), raw="", reason=m.group(2).strip()))
            if bad:
                wanted = {b.line for b in bad}
                with open_text(p) as fh:
                    for i, text in enumerate(fh, start=1):
                        if i in wanted:
                            for b in bad:
                                if b.line == i:
                                    b.raw = text.rstrip("\r\n")[:10_000]
    except InputError:
        raise
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: cannot read as {kind}: {first[:200]}") from None
    except Exception as e:  # pyarrow raises its own types for corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: cannot read as {kind}: {first[:200]}") from None
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


# -- locations: a local path or an object-store URL ------------------------------------------
# Outputs kept by path (test sets, reports) and large partitioned windows may live in an
# S3-compatible store. ``s3://bucket/key`` is read and written through fsspec (s3fs, from the
# ``scale`` extra); the endpoint comes from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` or,
# like MLflow, ``MLFLOW_S3_ENDPOINT_URL``, so one variable points both at the same store.


def is_url(location: str | Path) -> bool:
    """True for an object-store URL (``s3://...``); a plain path or ``file://`` is local."""
    from driftline.settings import is_url as _is_url

    return _is_url(location)


def join(base: str | Path, *parts: str) -> str:
    """``base/part/...`` for a local folder or a URL (no ``os.sep`` surprises, no double slashes)."""
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def _s3_options() -> dict[str, Any]:
    endpoint = (
        os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    )
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def filesystem(location: str | Path) -> tuple[Any, str]:
    """The fsspec filesystem for ``location`` and the path within it.

    Raises ConfigError (one line) when the URL's scheme needs a package that is not installed.
    """
    import fsspec

    text = str(location)
    if not is_url(text):
        return fsspec.filesystem("file"), str(Path(text.removeprefix("file://")).expanduser())
    scheme = text.split("://", 1)[0].lower()
    options = _s3_options() if scheme in ("s3", "s3a") else {}
    try:
        return fsspec.core.url_to_fs(text, **options)
    except ImportError as e:
        raise ConfigError(
            f"{text}: reading {scheme}:// needs {e.name or 'its fsspec backend'}: pip install 'driftline[scale]'"
        ) from None
    except ValueError as e:
        raise ConfigError(f"{text}: not a usable location ({e})") from None


def _wrap(location: str | Path, what: str, e: Exception) -> Exception:
    """An I/O failure as driftline's error: missing -> InputError, unreachable store -> TransientError."""
    from driftline.errors import TransientError

    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, FileNotFoundError):
        return InputError(f"{location}: not found")
    if isinstance(e, PermissionError):
        return InputError(f"{location}: cannot {what} (permission denied: {first[:200]})")
    return TransientError(f"{location}: cannot {what} ({first[:200]})")


def write_bytes(location: str | Path, data: bytes) -> str:
    """Write ``data`` to a local path or URL (creating local folders); returns the location."""
    fs, path = filesystem(location)
    try:
        if not is_url(location):  # local: write beside, then rename, so a crash never leaves half a file
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            return str(location)
        with fs.open(path, "wb") as fh:  # an object store's put is all or nothing
            fh.write(data)
    except OSError as e:
        raise _wrap(location, "write", e) from None
    return str(location)


def write_text(location: str | Path, text: str) -> str:
    """Write UTF-8 text to a local path or URL; returns the location."""
    return write_bytes(location, text.encode("utf-8"))


def read_bytes(location: str | Path) -> bytes:
    """The bytes at a local path or URL (InputError when missing, TransientError when unreachable)."""
    fs, path = filesystem(location)
    try:
        with fs.open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise _wrap(location, "read", e) from None


def exists(location: str | Path) -> bool:
    """Whether something is stored at ``location``."""
    fs, path = filesystem(location)
    try:
        return bool(fs.exists(path))
    except OSError as e:
        raise _wrap(location, "look up", e) from None


def write_parquet(frame: pd.DataFrame, location: str | Path) -> str:
    """Write ``frame`` as Parquet to a local path or URL; returns the location."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return write_bytes(location, buffer.getvalue())


def list_files(location: str | Path, suffixes: tuple[str, ...] = (".parquet", ".pq")) -> list[str]:
    """Files under a folder or prefix (recursively, e.g. hive ``key=value/`` folders), sorted.

    A location that is itself a file is returned alone. Names are given in the location's own
    form (``s3://bucket/...`` for a URL). Hidden files (``.name``, ``_SUCCESS``) are left out.
    """
    fs, path = filesystem(location)
    try:
        if fs.isfile(path):
            return [str(location)]
        found = fs.find(path)
    except OSError as e:
        raise _wrap(location, "list", e) from None
    scheme = str(location).split("://", 1)[0] + "://" if is_url(location) else ""
    out = []
    for name in sorted(found):
        base = name.rsplit("/", 1)[-1]
        if base.startswith((".", "_")) or not base.lower().endswith(suffixes):
            continue
        out.append(scheme + name if scheme and not name.startswith(scheme) else name)
    return out
