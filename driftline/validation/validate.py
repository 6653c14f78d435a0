"""Run a contract suite on a DataFrame with real GX objects and summarise the outcome.

The path is GX's own: an ephemeral context, a pandas data source, a dataframe asset, a
whole-dataframe batch definition, a ``ValidationDefinition`` and a ``Checkpoint``; when Data
Docs are asked for, GX's site builder renders them (named by run and data asset) and
:mod:`driftline.validation.docs` makes them load nothing from the network. The summary keeps, per expectation, its
name, column, success, unexpected count and a few example values, plus the row positions that
failed row-level expectations, so rows can be quarantined with the rule they broke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.validation.suite import DEFAULT_TOLERANCE, LEVEL_KEY, build_suite
from driftline.values import category_text, parse_bool

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

MAX_EXAMPLES = 5
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
}
"""COMPLETE, because quarantine needs every failing row's index, not the first 20."""


def _jsonable(v: Any) -> Any:
    """A value as plain JSON: numpy scalars unwrapped, NaN/NaT as None, times as ISO text."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, pd.Timestamp | datetime | date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return str(v)


@dataclass
class ExpectationOutcome:
    """One expectation's verdict, in the shape flows and the CLI report."""

    name: str
    column: str | None
    success: bool
    unexpected_count: int | None
    examples: list[Any]
    level: str
    severity: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``name:column`` (or just the name for table-level expectations): the quarantine reason."""
        return f"{self.name}:{self.column}" if self.column else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "column": self.column,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "examples": _jsonable(self.examples),
            "level": self.level,
            "severity": self.severity,
            "observed": _jsonable(self.observed),
            "error": self.error,
        }


class ValidationResult:
    """The verdict on one batch: overall success, per-expectation outcomes, failing rows.

    ``batch_error`` is set when the batch as a whole cannot be used (a missing column, a column
    of the wrong type, too few rows, a rule that could not be evaluated); then nothing from the
    batch should be stored.
    """

    def __init__(
        self,
        success: bool,
        statistics: dict[str, Any],
        expectations: list[ExpectationOutcome],
        batch_error: str | None,
        index: pd.Index,
        row_failures: list[tuple[str, np.ndarray]],
        docs_index: Path | None = None,
        suite_name: str | None = None,
        docs_page: Path | None = None,
    ) -> None:
        self.success = success
        self.statistics = statistics
        self.expectations = expectations
        self.batch_error = batch_error
        self.index = index
        self.row_failures = row_failures
        self.docs_index = docs_index
        self.docs_page = docs_page
        self.suite_name = suite_name

    @property
    def rows(self) -> int:
        return len(self.index)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    def to_dict(self) -> dict[str, Any]:
        """``success``, ``statistics``, ``expectations`` (one dict each), ``batch_error``, plus
        ``rows``, ``suite``, ``docs`` (the Data Docs index.html) and ``docs_page`` (this run's
        validation page), both None without Data Docs."""
        return {
            "success": self.success,
            "statistics": _jsonable(self.statistics),
            "expectations": [e.to_dict() for e in self.expectations],
            "batch_error": self.batch_error,
            "rows": self.rows,
            "suite": self.suite_name,
            "docs": None if self.docs_index is None else str(self.docs_index),
            "docs_page": None if self.docs_page is None else str(self.docs_page),
        }

    def failed_row_mask(self) -> pd.Series:
        """Per row (same index as the validated frame): the first failed row-level rule, else None.

        The rule is named ``expectation_name:column`` in suite order. For a repeated request id
        the first occurrence is not marked (GX flags every copy; the first one is kept, as
        ingest does).
        """
        out = np.full(len(self.index), None, dtype=object)
        for label, positions in self.row_failures:
            free = positions[pd.isna(out[positions])]
            out[free] = label
        return pd.Series(out, index=self.index, dtype=object, name="failed_rule")


def run_suite(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    docs_dir: Path | None = None,
    result_format: dict[str, Any] | str | None = None,
    *,
    asset_name: str | None = None,
    run_name: str | None = None,
) -> Any:
    """Validate ``frame`` against ``suite`` through a GX Checkpoint; GX's suite result.

    With ``docs_dir`` GX's site builder writes a static Data Docs site there
    (``docs_dir/index.html``) for this run, named ``run_name`` and showing ``asset_name`` as the
    data asset (a dataframe batch has none of its own: GX would print "Data asset: None"); the
    pages are then made self-contained (:func:`driftline.validation.docs.self_contained`).
    """
    from driftline.validation._gx import DOCS_SITE, gx, new_context

    ctx = new_context(docs_dir)
    suite = ctx.suites.add(suite)
    asset = _asset_key(asset_name or "batch")
    batch_definition = (
        ctx.data_sources.add_pandas("driftline")
        .add_dataframe_asset(name=asset)
        .add_batch_definition_whole_dataframe("whole_batch")
    )
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}-validation", data=batch_definition, suite=suite)
    )
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite.name}-checkpoint",
            validation_definitions=[definition],
            actions=[],
            result_format=result_format or RESULT_FORMAT,
        )
    )
    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_name=run_name) if run_name else None
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    identifier, suite_result = next(iter(result.run_results.items()))
    if docs_dir is not None:
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        from driftline.validation.docs import self_contained

        stored = suite_result
        spec = {k: v for k, v in dict(stored.meta.get("batch_spec") or {}).items() if k != "batch_data"}
        stored.meta["batch_spec"] = {**spec, "data_asset_name": asset_name or asset}
        ctx.validation_results_store.set(identifier, stored)
        ctx.build_data_docs(
            site_names=[DOCS_SITE], resource_identifiers=[identifier, ExpectationSuiteIdentifier(name=suite.name)]
        )
        self_contained(docs_dir)
    return suite_result


def _asset_key(name: str) -> str:
    """A data asset name GX can use in a file name."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "batch"


def _examples(result: dict[str, Any]) -> list[Any]:
    counts = result.get("partial_unexpected_counts")
    if counts:
        return [c["value"] for c in counts[:MAX_EXAMPLES]]
    seen: list[Any] = []
    for v in result.get("partial_unexpected_list") or []:
        if v not in seen:
            seen.append(v)
        if len(seen) == MAX_EXAMPLES:
            break
    return seen


def _batch_reason(o: ExpectationOutcome, missing: set[str]) -> str | None:
    """One phrase for a batch-level failure, or None when it is implied by a missing column."""
    if o.column is not None and o.column in missing and o.name != "expect_column_to_exist":
        return None
    if o.name == "expect_column_to_exist":
        return None  # reported together as "missing column(s)"
    if o.name == "expect_table_row_count_to_be_between":
        return f"row count {o.observed} is below the minimum {o.kwargs.get('min_value')}"
    if o.error:
        return f"{o.name} on {o.column or 'table'}: {o.error}"
    if o.name in ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"):
        wanted = o.kwargs.get("type_") or "one of " + ", ".join(o.kwargs.get("type_list") or [])
        return f"column {o.column} has type {o.observed}, expected {wanted}"
    return f"{o.label} failed"


def _in_suite_order(gx_result: Any, suite: ExpectationSuite | None) -> list[Any]:
    """GX returns results grouped by how it computed them; put them back in suite order."""
    results = list(gx_result.results)
    if suite is None:
        return results
    rank = {e.id: i for i, e in enumerate(suite.expectations) if e.id is not None}
    return sorted(results, key=lambda r: rank.get(r.expectation_config.id, len(rank)))


def summarise(gx_result: Any, frame: pd.DataFrame, suite: ExpectationSuite | None = None) -> ValidationResult:
    """Turn GX's suite result into a :class:`ValidationResult` for ``frame`` (in suite order)."""
    outcomes: list[ExpectationOutcome] = []
    row_failures: list[tuple[str, np.ndarray]] = []
    positions_of = pd.Index(frame.index)
    for r in _in_suite_order(gx_result, suite):
        cfg = r.expectation_config
        kw = dict(cfg.kwargs)
        res = dict(r.result or {})
        info = r.exception_info or {}
        if info and not info.get("raised_exception", False) and "exception_message" not in info:
            # Several metrics failed: GX keys exception infos by metric id.
            messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict)]
            error = next((m for m in messages if m), None)
        else:
            error = info.get("exception_message") if info.get("raised_exception") else None
        level = (cfg.meta or {}).get(LEVEL_KEY, "batch")
        index_list = res.get("unexpected_index_list")
        if index_list is not None and level == "batch":
            level = "row"  # a type check on an object column is evaluated per value
        severity = getattr(cfg, "severity", None)
        o = ExpectationOutcome(
            name=cfg.type,
            column=kw.get("column"),
            success=bool(r.success),
            unexpected_count=None if res.get("unexpected_count") is None else int(res["unexpected_count"]),
            examples=_examples(res),
            level=level,
            severity=str(getattr(severity, "value", severity or "critical")),
            kwargs=kw,
            observed=res.get("observed_value"),
            error=str(error).splitlines()[0] if error else None,
        )
        outcomes.append(o)
        if not o.success and o.level == "row" and index_list and not o.error:
            pos = positions_of.get_indexer(pd.Index(index_list))
            pos = np.unique(pos[pos >= 0])
            if o.name == "expect_column_values_to_be_unique" and o.column in frame.columns:
                later = frame[o.column].duplicated(keep="first").to_numpy()
                pos = pos[later[pos]]
            row_failures.append((o.label, pos))
    missing = {o.column for o in outcomes if o.name == "expect_column_to_exist" and not o.success and o.column}
    for o in outcomes:
        if o.column in missing and not o.success:
            o.error = f"column {o.column} is missing"
    parts = [f"missing column(s): {', '.join(sorted(missing))}"] if missing else []
    for o in outcomes:
        if o.success or not (o.level == "batch" or o.error):
            continue
        reason = _batch_reason(o, missing)
        if reason and reason not in parts:
            parts.append(reason)
    stats = gx_result.statistics or {}
    statistics = {
        "evaluated_expectations": int(stats.get("evaluated_expectations", len(outcomes))),
        "successful_expectations": int(stats.get("successful_expectations", 0)),
        "unsuccessful_expectations": int(stats.get("unsuccessful_expectations", 0)),
        "success_percent": _jsonable(stats.get("success_percent")),
    }
    return ValidationResult(
        success=bool(gx_result.success),
        statistics=statistics,
        expectations=outcomes,
        batch_error="; ".join(parts) or None,
        index=frame.index,
        row_failures=row_failures,
        suite_name=getattr(gx_result, "suite_name", None),
    )


def normalise_batch(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The contract's features as validation (and ingest) read them; other columns untouched.

    Categorical features become canonical text (:func:`driftline.values.category_text`,
    stripped, empty text missing); boolean features become pandas ``boolean`` when every value
    reads as one (:func:`driftline.values.parse_bool`), else an object column of True/False/NA
    with each unreadable value kept as it was, for the suite's value-set check to report. Index
    and row order are kept; the input is not modified.
    """
    out = frame.copy(deep=False)
    for name, f in contract.features.items():
        if name not in frame.columns:
            continue
        if f.type == "categorical":
            out[name] = category_text(frame[name], strip=True)
        elif f.type == "boolean":
            parsed, bad = parse_bool(frame[name])
            if bad.any():
                mixed = parsed.astype(object)
                mixed[bad] = frame[name][bad].astype(object)
                out[name] = mixed
            else:
                out[name] = parsed
    return out


def _gx_view(frame: pd.DataFrame, contract: Contract | None = None) -> pd.DataFrame:
    """The frame as GX should see it: unique default index, features normalised, categories decoded.

    GX reports failing rows by index label, so a non-unique index is replaced by positions;
    with a contract, features are read as :func:`normalise_batch` says; GX's type checks do
    not know pandas ``category`` columns, so any left are decoded.
    """
    view = frame
    if not isinstance(view.index, pd.RangeIndex) or not view.index.is_unique:
        view = view.reset_index(drop=True)
    if contract is not None:
        view = normalise_batch(view, contract)
    cats = [c for c in view.columns if isinstance(view[c].dtype, pd.CategoricalDtype)]
    if cats:
        view = view.copy(deep=False)
        for c in cats:
            view[c] = view[c].astype(view[c].cat.categories.dtype)
    return view


def validate_frame(
    frame: pd.DataFrame,
    contract: Contract,
    profile: Any = None,
    docs_dir: Path | str | None = None,
    *,
    min_rows: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    suite: ExpectationSuite | None = None,
    asset_name: str | None = None,
    run_name: str | None = None,
) -> ValidationResult:
    """Validate one batch against the suite the contract (and profile) implies.

    The suite sees the batch as :func:`normalise_batch` reads it (numeric category codes and
    1/0 or yes/no booleans are fine; see :mod:`driftline.values`); ``frame`` is not modified.
    Returns the same structure for flows and the CLI (see :meth:`ValidationResult.to_dict`).
    ``suite`` overrides the generated suite (then ``profile``, ``min_rows`` and ``tolerance``
    are not used). With ``docs_dir``, self-contained Data Docs are written there for a run named
    ``run_name`` whose data asset reads ``asset_name`` (e.g. ``churn · test data · week 2026-03-09``).
    """
    if suite is None:
        suite = build_suite(contract, profile, min_rows=min_rows, tolerance=tolerance)
    view = _gx_view(contract.apply_aliases(frame), contract)
    docs = None if docs_dir is None else Path(docs_dir)
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
    gx_result = run_suite(view, suite, docs, asset_name=asset_name, run_name=run_name)
    result = summarise(gx_result, view, suite)
    result.index = frame.index
    if docs is not None:
        index = docs / "index.html"
        result.docs_index = index if index.exists() else None
        pages = sorted((docs / "validations").rglob("*.html"), key=lambda p: p.stat().st_mtime_ns)
        result.docs_page = pages[-1] if pages else None
    return result
