"""How raw column values are read, in one place, so ingest, validation, skew and sampling agree.

- **Categorical values are compared as text.** :func:`category_value` is the one canonical form
  ingest, validation, skew, sampling, training and the drift engine use: an integral float loses
  its ``.0`` (``4111.0`` -> ``"4111"``, so an MCC column that pandas read as float64 because of a
  missing value still matches ``4111``), a boolean becomes ``"True"``/``"False"``, anything else
  is ``str(value)``. :func:`category_text` applies it to a column.
- **Booleans** are ``True``/``False``, the numbers 1/0, or the text ``true``/``false``, ``1``/``0``
  (also ``1.0``/``0.0``), ``yes``/``no``, ``y``/``n``, ``t``/``f`` in any case, surrounded by any
  whitespace (:func:`bool_value`, :func:`parse_bool`).
- **Timestamps** (:func:`parse_times`): datetime columns as they are, text parsed (ISO-8601 and
  other formats pandas recognises, one format per value), and numbers read as Unix time. The unit
  of a numeric column follows from the magnitude of its median: seconds, milliseconds,
  microseconds or nanoseconds since 1970-01-01 UTC, each accepted for instants from 1971-01-01 up
  to (not including) 2100-01-01. Those four ranges do not overlap (each spans a factor of about
  130 and they are a factor of 1000 apart), so a value fits at most one unit. Values that do not
  fit the column's unit become NaT; a column whose median fits no unit is refused.

This module imports only numpy, pandas and ``driftline.errors``, so any part of driftline can use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftline.errors import InputError

TRUE_TEXT = frozenset({"true", "1", "1.0", "yes", "y", "t"})
FALSE_TEXT = frozenset({"false", "0", "0.0", "no", "n", "f"})

EPOCH_UNITS: tuple[tuple[str, int], ...] = (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9))
"""Unix-time units tried for numeric timestamps, with their ticks per second."""
EPOCH_MIN_SECONDS = 31_536_000  # 1971-01-01T00:00:00Z
EPOCH_MAX_SECONDS = 4_102_444_800  # 2100-01-01T00:00:00Z (excluded)


def category_value(value: Any) -> str:
    """The text a (non-missing) categorical value is compared as: ``4111.0`` -> ``"4111"``, ``True`` -> ``"True"``."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _collides(u: Any) -> bool:
    """True when ``u`` may be hashed together with a value of another canonical text (``True == 1``)."""
    if isinstance(u, bool | np.bool_):
        return True
    return isinstance(u, int | float | np.number) and (u == 0 or u == 1)


def category_text(values: pd.Series, *, strip: bool = False) -> pd.Series:
    """A column as canonical category text: an object Series of ``str``, NaN where missing.

    Index and name are kept. With ``strip`` the text is also stripped of surrounding whitespace
    and an empty result counts as missing (how ingest stores categories). The conversion is done
    once per distinct value; a column mixing booleans with the numbers 0/1 (which pandas hashes
    as equal) is converted value by value so ``True`` stays ``"True"`` and ``1`` stays ``"1"``.
    """
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        text = values.str.strip() if strip else values  # already text: only the strip to do
        text = text.astype(object)
        keep = text.notna() & (text != "") if strip else text.notna()
        return text.where(keep.to_numpy(dtype=bool), np.nan)
    obj = values.astype(object)
    present = obj.notna().to_numpy(dtype=bool)
    out = np.full(len(obj), np.nan, dtype=object)
    if present.any():
        kept = obj.to_numpy(dtype=object)[present]
        uniques = pd.unique(kept)

        def convert(v: Any) -> Any:
            text = category_value(v)
            if strip:
                text = text.strip()
                return text if text else np.nan
            return text

        if any(_collides(u) for u in uniques):
            out[present] = [convert(v) for v in kept]
        else:
            lookup = {u: convert(u) for u in uniques}
            out[present] = pd.Series(kept, dtype=object).map(lookup).to_numpy(dtype=object)
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def bool_value(value: Any) -> bool | None:
    """True/False for the accepted spellings of a boolean (module docstring), None for anything else."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.number):
        if value == 1:
            return True
        if value == 0:
            return False
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT:
            return True
        if text in FALSE_TEXT:
            return False
    return None


def parse_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column as pandas ``boolean`` (NA where missing or unreadable) and the mask of unreadable values.

    Missing values (None, NaN, NA) are not unreadable; anything present that :func:`bool_value`
    does not accept is. Index is kept.
    """
    present = values.notna()
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values.dtype):
        x = values.to_numpy(dtype="float64", na_value=np.nan)
        out = pd.array(np.where(x == 1, True, False), dtype="boolean")
        out[~((x == 1) | (x == 0))] = pd.NA
        parsed = pd.Series(out, index=values.index)
    else:
        obj = values.astype(object)
        uniques = pd.unique(obj[present].to_numpy(dtype=object))
        # True == 1 == 1.0 share a hash; they also share a meaning, so one lookup per unique is safe.
        lookup = {u: bool_value(u) for u in uniques}
        mapped = obj.map(lookup)
        parsed = pd.Series(pd.array(mapped.where(mapped.notna(), None).tolist(), dtype="boolean"), index=values.index)
    return parsed, present & parsed.isna()


def epoch_unit(values: np.ndarray) -> str | None:
    """The Unix-time unit (``s``, ``ms``, ``us``, ``ns``) whose accepted range holds the median, or None."""
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    median = float(np.median(x))
    for unit, per_second in EPOCH_UNITS:
        if EPOCH_MIN_SECONDS * per_second <= median < EPOCH_MAX_SECONDS * per_second:
            return unit
    return None


def _epoch_times(values: pd.Series, what: str) -> pd.Series:
    """Numbers as Unix time in the column's unit (see module docstring); datetime64[us]."""
    present = values.notna().to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(values.dtype):
        ints = values.to_numpy(dtype="int64", na_value=0)
        floats = ints.astype("float64")
    else:
        floats = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ints = None
    unit = epoch_unit(floats[present])
    if unit is None:
        raise InputError(
            f"{what} holds numbers that are not Unix times (seconds, milliseconds, microseconds or "
            "nanoseconds since 1970, for dates 1971-2099); store ISO-8601 text or a datetime column"
        )
    per_second = dict(EPOCH_UNITS)[unit]
    with np.errstate(invalid="ignore"):
        ok = present & (floats >= EPOCH_MIN_SECONDS * per_second) & (floats < EPOCH_MAX_SECONDS * per_second)
    micros = np.zeros(len(values), dtype="int64")
    if ints is not None:
        if per_second <= 10**6:
            micros[ok] = ints[ok] * (10**6 // per_second)
        else:
            micros[ok] = ints[ok] // (per_second // 10**6)
    else:
        micros[ok] = np.round(floats[ok] * (10**6 / per_second)).astype("int64")
    out = micros.astype("datetime64[us]")
    out[~ok] = np.datetime64("NaT")
    return pd.Series(out, index=values.index, name=values.name)


def _all_numbers(values: pd.Series) -> bool:
    """True when every present value of a text column reads as a number (and at least one is present)."""
    present = values.notna()
    if not present.any():
        return False
    numbers = pd.to_numeric(values[present].astype(str).str.strip(), errors="coerce")
    return bool(numbers.notna().all())


def parse_times(values: pd.Series, what: str = "timestamp column") -> pd.Series:
    """A column as tz-naive UTC ``datetime64[us]``, NaT where a value cannot be read.

    Datetime columns are converted to UTC (naive ones taken as UTC); text is parsed value by
    value; numbers, and text columns holding only numbers, are Unix times in the unit their
    magnitude implies (module docstring). ``what`` names the column in the error raised when a
    numeric column is not Unix time at all, e.g. ``"data.csv: timestamp column 'ts'"``.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = values
    elif pd.api.types.is_bool_dtype(values.dtype):
        out = pd.Series(pd.NaT, index=values.index, name=values.name, dtype="datetime64[us]")
    elif pd.api.types.is_numeric_dtype(values.dtype) or _all_numbers(values):
        return _epoch_times(values, what)
    else:
        out = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[us]")


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None (JSON, tags and reports show no NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
