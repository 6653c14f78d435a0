"""Work that splits, as plain functions: partitions of a large window, backtest folds.

Nothing here knows about Dask or Prefect. Each piece of work is a function of picklable inputs
that returns a small picklable result, and a merge puts the results together exactly:

- **Partitions.** :func:`count_partition` counts one Parquet file (local or ``s3://``) on a
  reference profile's buckets, streaming it in record batches; :func:`merge_counts` adds the
  counts up (integers, so the merge is exact: the counts of all partitions equal the counts of
  the whole window, in any order). Hive folders (``country=US/part-0.parquet``) supply the
  column they name when the file lacks it, so a window partitioned by segment is counted per
  segment and merged like any other. :func:`evaluate_counts` turns the merged counts into the
  same drift report :func:`driftline.drift.compare` gives for the whole frame.
- **Backtest folds.** :func:`backtest_plan` lists one item per (training window, fold);
  :func:`backtest_item` trains and scores one; :func:`merge_backtest` gives the result
  :func:`driftline.weekly.run_backtest` gives, and :func:`run_backtest` runs the three with
  any ``map``-like callable (the built-in ``map`` by default; a Dask-backed one in a flow).

The flows in ``flows/drift_window.py`` and ``flows/backtest.py`` submit these to Prefect's
``DaskTaskRunner`` when ``scale.dask_address`` is set, and run them in-process otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from driftline.contract import Contract
from driftline.drift.counts import WindowCounts, count_window
from driftline.drift.profile import Profile
from driftline.errors import InputError

DEFAULT_BATCH_ROWS = 262_144
_HIVE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=([^/]*)$")


# -- partitions ------------------------------------------------------------------------------
def list_partitions(location: str) -> list[str]:
    """The Parquet files of a partitioned window (a folder, a prefix, or one file), sorted."""
    from driftline.io import list_files

    files = list_files(location)
    if not files:
        raise InputError(f"{location}: no Parquet files found")
    return files


def hive_values(location: str) -> dict[str, str]:
    """``{column: value}`` from ``key=value`` folders in a partition's path (URL-decoded)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for part in str(location).split("/")[:-1]:
        m = _HIVE.match(part)
        if m:
            out[m.group(1)] = unquote(m.group(2))
    return out


def _wanted_columns(profile: Profile, features: list[str]) -> list[str]:
    cols = list(features)
    for extra in (
        profile.score.column if profile.score else None,
        profile.label.column if profile.label else None,
        profile.segments.column if profile.segments else None,
    ):
        if extra is not None and extra not in cols:
            cols.append(extra)
    return cols


def iter_partition(
    location: str, profile: Profile, features: list[str], batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """One partition's columns as frames of at most ``batch_rows`` rows (memory bounded by a batch)."""
    import pyarrow.parquet as pq

    from driftline.io import filesystem

    fs, path = filesystem(location)
    wanted = _wanted_columns(profile, features)
    hive = hive_values(location)
    try:
        fh = fs.open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{location}: not found") from None
    with fh:
        try:
            present = set(pq.ParquetFile(fh).schema_arrow.names)
            fh.seek(0)
            # Categories read dictionary-encoded arrive as pandas Categoricals: counted from their codes.
            categorical = {c for c in wanted if c in profile.features and profile.features[c].kind == "categorical"}
            if profile.segments is not None:
                categorical.add(profile.segments.column)
            pf = pq.ParquetFile(fh, pre_buffer=False, read_dictionary=sorted(categorical & present) or None)
        except Exception as e:  # pyarrow raises its own types for a file that is not Parquet
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"{location}: cannot read as parquet: {first[:200]}") from None
        missing = [c for c in features if c not in present and c not in hive]
        if missing:
            raise InputError(f"{location}: missing feature column(s): {', '.join(missing)}")
        columns = [c for c in wanted if c in present]
        constant = {c: hive[c] for c in wanted if c not in present and c in hive}
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            frame = batch.to_pandas()
            for c, v in constant.items():
                frame[c] = v
            yield frame


def count_partition(
    profile: Profile,
    location: str,
    features: list[str] | None = None,
    *,
    contract: Contract | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> WindowCounts:
    """Counts of one partition on ``profile``'s buckets (features, score, labels, segments)."""
    names = list(features) if features is not None else list(profile.features)
    score_col = profile.score.column if profile.score is not None else None
    label_col = profile.label.column if profile.label is not None else None
    total: WindowCounts | None = None
    for frame in iter_partition(location, profile, names, batch_rows):
        if contract is not None:
            frame = contract.apply_aliases(frame)
        wc = count_window(profile, frame, names, score_column=score_col, label_column=label_col)
        total = wc if total is None else total.merge(wc)
    if total is None:  # a file with a schema and no rows
        total = count_window(profile, _empty(profile, names), names, score_column=score_col, label_column=label_col)
    return total


def _empty(profile: Profile, names: list[str]) -> pd.DataFrame:
    cols = {n: pd.Series([], dtype=float if profile.features[n].kind == "numeric" else object) for n in names}
    return pd.DataFrame(cols)


def merge_counts(counts: Iterable[WindowCounts]) -> WindowCounts:
    """All partitions' counts added up (exact; the order does not matter)."""
    total: WindowCounts | None = None
    for wc in counts:
        total = wc if total is None else total.merge(wc)
    if total is None or total.n_rows == 0:
        raise InputError("the window has no rows")
    return total


def evaluate_counts(profile: Profile, counts: WindowCounts, settings: Any, contract: Contract | None = None) -> Any:
    """The drift report of merged counts (``contract``: today's thresholds and key flags)."""
    from driftline.drift.compare import evaluate

    if contract is not None:
        profile = profile.with_contract(contract)
    return evaluate(profile, counts, settings)


# -- backtest folds --------------------------------------------------------------------------
@dataclass(frozen=True)
class FoldItem:
    """One piece of a backtest: a candidate training window on one fold."""

    train_weeks: int
    index: int
    fold: Any  # driftline.splits.TemporalSplit


def backtest_plan(folds: list[Any], settings: Any) -> list[FoldItem]:
    """One item per (training window option, fold), ``train_weeks`` first, folds in order."""
    items = []
    for weeks in settings.windows.train_week_options:
        for i, f in enumerate(folds):
            items.append(FoldItem(weeks, i, replace(f, train_start=f.test_start - pd.Timedelta(weeks=weeks))))
    return items


def backtest_item(labelled: pd.DataFrame, contract: Contract, item: FoldItem, settings: Any) -> dict[str, Any]:
    """Train and score one fold (the record :func:`driftline.metrics.backtest` keeps per fold)."""
    from driftline.metrics import backtest

    result = backtest(labelled, contract, [item.fold], settings.training, settings.gates.primary_metric)
    return {**result["folds"][0], "fold": item.index}


def merge_backtest(items: list[FoldItem], records: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    """Per-fold records back into :func:`driftline.weekly.run_backtest`'s result (the best window chosen)."""
    from driftline.metrics import summarise

    metric = settings.gates.primary_metric
    w = settings.windows
    results: dict[int, dict[str, Any]] = {}
    for weeks in w.train_week_options:
        folds = [r for it, r in zip(items, records, strict=True) if it.train_weeks == weeks]
        mean, std, used = summarise([r[metric] for r in folds])
        results[weeks] = {"metric": metric, "folds": folds, "mean": mean, "std": std, "n_folds_used": used}
    from driftline.weekly import choose_window

    return choose_window(results, w.train_weeks)


def run_backtest(
    labelled: pd.DataFrame,
    folds: list[Any],
    contract: Contract,
    settings: Any,
    map_fn: Callable[..., Iterable[Any]] = map,
) -> dict[str, Any] | None:
    """The weekly backtest with its folds spread by ``map_fn`` (same result as ``weekly.run_backtest``)."""
    if not folds:
        return None
    items = backtest_plan(list(folds), settings)
    records = list(map_fn(lambda it: backtest_item(labelled, contract, it, settings), items))
    return merge_backtest(items, records, settings)
