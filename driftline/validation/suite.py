"""Build a Great Expectations suite from the feature contract (and a reference profile).

What the contract implies, in suite order:

- ``expect_table_row_count_to_be_between(min_value=min_rows)``;
- ``expect_column_to_exist`` for the request id, entity id, timestamp and every feature;
- request id: ``expect_column_values_to_not_be_null`` and ``expect_column_values_to_be_unique``;
  entity id: not null; timestamp: not null and ``expect_column_values_to_be_of_type("datetime64")``
  (tz-naive UTC datetimes, as the store and the simulator use);
- per feature: numeric: ``expect_column_values_to_be_in_type_list`` with the numeric dtypes;
  boolean: ``expect_column_values_to_be_in_set([True, False])``; categorical: no type check (a
  category may be coded as text or as numbers); then not null unless ``nullable``,
  ``expect_column_values_to_be_between`` for a declared range widened by ``range_tolerance`` ×
  (high − low) on each side (a soft range, ``range_soft: true``, is checked at level
  ``distribution`` with severity ``warning``: reported, never a row to quarantine), and
  ``expect_column_values_to_be_in_set`` for a closed vocabulary;
- with a reference profile, per numeric feature: quantiles (and the mean, when the profile
  knows it) within ``tolerance`` × the reference spread of the reference values.

Every expectation carries ``meta["driftline_level"]``: ``batch`` (the batch as a whole cannot be
used: a missing column, a wrong column type, too few rows), ``row`` (single rows break a rule and
can be quarantined) or ``distribution`` (severity ``warning``: the batch looks unlike the
reference). The target column is not required: serving batches do not carry labels.

The suite checks values as ingest reads them (:mod:`driftline.values`), so it is meant to run on
the batch as :func:`driftline.validation.validate.normalise_batch` presents it (``validate_frame``
does this): categorical values as canonical text (``4111.0`` is ``"4111"``, whitespace stripped,
empty text missing), booleans as True/False wherever they read as one (true/false, 1/0, yes/no
in any case), any other value left as it was so the boolean value-set check reports it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driftline.contract import Contract

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

DEFAULT_TOLERANCE = 0.5
"""Distribution bounds: reference statistic ± this many reference spreads (see NumericReference)."""

LEVEL_KEY = "driftline_level"

NUMERIC_TYPES = [
    "int",
    "float",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "UInt8Dtype",
    "UInt16Dtype",
    "UInt32Dtype",
    "UInt64Dtype",
    "Float32Dtype",
    "Float64Dtype",
]
"""Names GX resolves (numpy dtype names, pandas extension dtype classes, Python types)."""
BOOLEAN_VALUES = [True, False]
"""The value set of a boolean feature, after normalisation (see the module docstring)."""
TIMESTAMP_TYPE = "datetime64"

_QUANTILE_KEY = re.compile(r"^q(\d{2})$")
_PROFILE_PROBS = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class NumericReference:
    """What the suite needs to know about one numeric feature in the reference.

    ``quantiles`` are (probability, value) pairs; ``spread`` is the unit of the tolerance
    (the standard deviation when known, else the range between the outermost quantiles, else
    max−min, else max(|median|, 1)), always > 0.
    """

    quantiles: tuple[tuple[float, float], ...]
    spread: float
    mean: float | None = None


def _positive(*candidates: float | None) -> float | None:
    for c in candidates:
        if c is not None and math.isfinite(c) and c > 0:
            return float(c)
    return None


def _from_summary(s: Mapping[str, Any]) -> NumericReference | None:
    """A summary dict: ``mean``, ``std`` and quantiles keyed ``qNN`` (e.g. q05, q50, q95)."""
    qs: list[tuple[float, float]] = []
    for k, v in s.items():
        m = _QUANTILE_KEY.match(str(k))
        if m and v is not None and math.isfinite(float(v)):
            qs.append((int(m.group(1)) / 100, float(v)))
    qs.sort()
    mean = s.get("mean")
    mean = float(mean) if mean is not None and math.isfinite(float(mean)) else None
    if not qs and mean is None:
        return None
    qd = dict(qs)
    width = (qs[-1][1] - qs[0][1]) if len(qs) >= 2 else None
    median = qd.get(0.5, mean if mean is not None else (qs[len(qs) // 2][1] if qs else 0.0))
    spread = _positive(s.get("std"), width) or max(abs(median), 1.0)
    return NumericReference(quantiles=tuple(qs), spread=spread, mean=mean)


def _from_feature_profile(fp: Any, bins: int) -> NumericReference | None:
    """A driftline FeatureProfile: quantiles recovered exactly from its bin edges and counts.

    The edges are the reference quantiles at ``i / bins`` (inverted CDF, ties merged), so the
    reference quantile at such a p is the smallest edge whose cumulative share reaches p. The
    levels used are the ``i / bins`` nearest to 0.1, 0.5 and 0.9.
    """
    edges = [float(e) for e in (fp.edges if fp.edges is not None else [])]
    counts = [int(c) for c in fp.counts[:-1]]  # value bins, without the missing bucket
    n = sum(counts)
    if not edges or n == 0 or bins < 2:
        return None
    cum, total = [], 0
    for c in counts[: len(edges)]:
        total += c
        cum.append(total / n)
    levels = [i / bins for i in range(1, bins)]
    probs = sorted({min(levels, key=lambda q, t=target: abs(q - t)) for target in _PROFILE_PROBS})
    qs = [(p, next((e for e, f in zip(edges, cum, strict=True) if f >= p - 1e-12), edges[-1])) for p in probs]
    low, high = fp.low, fp.high
    spread = _positive(qs[-1][1] - qs[0][1], (high - low) if low is not None and high is not None else None)
    median = min(qs, key=lambda pv: abs(pv[0] - 0.5))[1]
    return NumericReference(quantiles=tuple(qs), spread=spread or max(abs(median), 1.0))


def numeric_reference(profile: Any, name: str) -> NumericReference | None:
    """The reference of one numeric feature from any supported profile, or None.

    Accepted: a :class:`driftline.drift.profile.Profile` (or its ``to_dict()`` form); any
    object with ``numeric_summary(name) -> {"mean", "std", "q05", "q50", "q95"} | None``; a
    mapping ``{name: summary}`` or ``{"features": {name: summary}}``.
    """
    if profile is None:
        return None
    if isinstance(profile, Mapping) and profile.get("format") == "driftline.profile":
        from driftline.drift.profile import Profile

        profile = Profile.from_dict(dict(profile))
    summary_fn = getattr(profile, "numeric_summary", None)
    if callable(summary_fn):
        s = summary_fn(name)
        return _from_summary(s) if s else None
    if isinstance(profile, Mapping):
        feats = profile.get("features", profile)
        s = feats.get(name) if isinstance(feats, Mapping) else None
        return _from_summary(s) if isinstance(s, Mapping) else None
    feats = getattr(profile, "features", None)
    if isinstance(feats, Mapping) and name in feats:
        fp = feats[name]
        if getattr(fp, "kind", None) == "numeric":
            return _from_feature_profile(fp, int(getattr(profile, "bins", 10)))
    return None


def _meta(level: str) -> dict[str, str]:
    return {LEVEL_KEY: level}


def build_suite(
    contract: Contract,
    profile: Any = None,
    min_rows: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    name: str | None = None,
) -> ExpectationSuite:
    """The GX ``ExpectationSuite`` the contract (and the profile, when given) implies.

    ``profile`` is checked against the contract's fingerprint when it carries one.
    """
    if min_rows < 0:
        raise ValueError(f"min_rows must be >= 0, got {min_rows}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    check = getattr(profile, "check_contract", None)
    if callable(check):
        check(contract)

    from driftline.validation._gx import ExpectColumnQuantilesNearReference, gx, gxe

    c = contract
    out: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=int(min_rows), meta=_meta("batch"))]
    out += [gxe.ExpectColumnToExist(column=col, meta=_meta("batch")) for col in c.row_columns]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(column=c.request_id, meta=_meta("row")),
        gxe.ExpectColumnValuesToBeUnique(column=c.request_id, meta=_meta("row")),
        gxe.ExpectColumnValuesToNotBeNull(column=c.entity_id, meta=_meta("row")),
        gxe.ExpectColumnValuesToNotBeNull(column=c.timestamp, meta=_meta("row")),
        gxe.ExpectColumnValuesToBeOfType(column=c.timestamp, type_=TIMESTAMP_TYPE, meta=_meta("batch")),
    ]
    for col, f in c.features.items():
        if f.type == "numeric":
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=NUMERIC_TYPES, meta=_meta("batch")))
        elif f.type == "boolean":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(BOOLEAN_VALUES), meta=_meta("row")))
        if not f.nullable:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=col, meta=_meta("row")))
        if f.type == "numeric" and f.range is not None:
            lo, hi = float(f.range[0]), float(f.range[1])
            slack = c.range_tolerance * (hi - lo)
            if f.range_soft:  # not reviewed yet: reported as a warning, never a row to quarantine
                out.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=col,
                        min_value=lo - slack,
                        max_value=hi + slack,
                        severity="warning",
                        meta=_meta("distribution"),
                    )
                )
            else:
                out.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=col, min_value=lo - slack, max_value=hi + slack, meta=_meta("row")
                    )
                )
        if f.type == "categorical" and f.closed and f.vocabulary:
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(f.vocabulary), meta=_meta("row")))
        if f.type == "numeric" and profile is not None:
            ref = numeric_reference(profile, col)
            if ref is None:
                continue
            width = tolerance * ref.spread
            if ref.mean is not None:
                out.append(
                    gxe.ExpectColumnMeanToBeBetween(
                        column=col,
                        min_value=ref.mean - width,
                        max_value=ref.mean + width,
                        severity="warning",
                        meta=_meta("distribution"),
                    )
                )
            if ref.quantiles:
                out.append(
                    ExpectColumnQuantilesNearReference(
                        column=col,
                        quantile_ranges={
                            "quantiles": [p for p, _ in ref.quantiles],
                            "value_ranges": [[v - width, v + width] for _, v in ref.quantiles],
                        },
                        severity="warning",
                        meta=_meta("distribution"),
                    )
                )
    suite_name = name or f"{c.name}-{c.fingerprint()}"
    return gx.ExpectationSuite(name=suite_name, expectations=out)
