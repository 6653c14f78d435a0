"""Tasks for work that splits (``driftline.scale``), and the task runner that spreads them.

With ``scale.dask_address`` set, :func:`task_runner` is Prefect's ``DaskTaskRunner`` on that
``distributed`` scheduler: each partition or fold is a Prefect task run executed on a Dask
worker (which needs driftline installed and ``PREFECT_API_URL`` set, like a Prefect worker).
Without it the same tasks run one at a time in the flow's own process; ``prefect_dask`` is
then never imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from driftline import scale
from tasks._common import RETRIES, RETRY_DELAY_SECONDS, transient

IO = {"retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_SECONDS, "retry_condition_fn": transient}


@contextmanager
def task_runner(address: str | None) -> Iterator[Any]:
    """A started task runner: ``DaskTaskRunner(address=...)``, or one thread in this process."""
    if address:
        from prefect_dask import DaskTaskRunner

        runner: Any = DaskTaskRunner(address=address)
    else:
        from prefect.task_runners import ThreadPoolTaskRunner

        runner = ThreadPoolTaskRunner(max_workers=1)
    with runner:
        yield runner


def spread(runner: Any, fn: Any, items: list[dict[str, Any]]) -> list[Any]:
    """Submit ``fn`` once per parameter dict on ``runner``; the results, in order."""
    futures = [runner.submit(fn, parameters=p) for p in items]
    return [f.result() for f in futures]


@task(name="list-partitions", cache_policy=NO_CACHE, **IO)
def list_partitions(location: str) -> list[str]:
    """The Parquet files of the window (a folder, a prefix or one file; local or s3://)."""
    parts = scale.list_partitions(location)
    get_run_logger().info("%d partition(s) under %s", len(parts), location)
    return parts


@task(name="count-partition", task_run_name="count-{location}", cache_policy=NO_CACHE, **IO)
def count_partition(profile: Any, location: str, features: list[str] | None, contract: Any) -> Any:
    """One partition's counts on the reference profile's buckets (runs on a Dask worker)."""
    return scale.count_partition(profile, location, features, contract=contract)


@task(name="merge-and-evaluate", cache_policy=NO_CACHE)
def merge_and_evaluate(profile: Any, counts: list[Any], settings: Any, contract: Any) -> Any:
    """Add the partitions' counts up (exact) and judge drift on the total."""
    report = scale.evaluate_counts(profile, scale.merge_counts(counts), settings.drift, contract)
    get_run_logger().info("drift over %d rows: %s", report.n_current, report.decision.action)
    return report


@task(name="write-window-report", cache_policy=NO_CACHE, **IO)
def write_report(settings: Any, report: Any, name: str) -> str:
    """The HTML report under the outputs location (``scale.outputs``: a folder or s3://); its location."""
    from driftline.drift import render_html
    from driftline.io import write_text

    return write_text(settings.output_location("reports", name), render_html(report))


@task(name="publish-window", cache_policy=NO_CACHE)
def publish_window(location: str, parts: list[str], champion: Any, report: Any, path: str) -> dict[str, Any]:
    """The ``drift-window`` markdown artifact and the run's summary."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    flagged = {f.name: round(f.psi, 4) for f in report.by_severity() if f.severity in ("warn", "alert")}
    lines = [f"# Drift of {location}", "", f"- partitions: {len(parts)}; rows: {report.n_current:,}"]
    lines += [f"- champion: {champion.version}; decision: **{report.decision.action}**", f"- report: `{path}`"]
    lines += [f"- {n}: PSI {v}" for n, v in flagged.items()]
    create_markdown_artifact("\n".join(lines) + "\n", key="drift-window", description=report.decision.action)
    summary = {
        "location": location,
        "partitions": len(parts),
        "rows": report.n_current,
        "champion_version": champion.version,
        "action": report.decision.action,
        "flagged": ", ".join(f"{n}={v}" for n, v in flagged.items()),
        "report": path,
    }
    create_table_artifact([summary], key="drift-window-summary", description="the drift-window run, for scripts")
    return summary


@task(name="load-window", cache_policy=NO_CACHE, **IO)
def load_window(ctx: Any, as_of: Any) -> Any:
    """The week's labelled rows and backtest folds (:func:`driftline.weekly.load_window`)."""
    from driftline import weekly

    return weekly.load_window(ctx.store, ctx.contract, ctx.settings, weekly.Week.of(as_of, ctx.settings.windows))


def backtest_items(window: Any, settings: Any) -> list[scale.FoldItem]:
    """One item per (training window option, fold) of ``window``."""
    return scale.backtest_plan(list(window.folds), settings)


@task(name="backtest-fold", task_run_name="backtest-{item.train_weeks}w-fold-{item.index}", cache_policy=NO_CACHE)
def backtest_fold(labelled: Any, contract: Any, item: scale.FoldItem, settings: Any) -> dict[str, Any]:
    """Train and score one (training window, fold) of the backtest (runs on a Dask worker)."""
    return scale.backtest_item(labelled, contract, item, settings)


@task(name="merge-backtest", cache_policy=NO_CACHE)
def merge_backtest(items: list[scale.FoldItem], records: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    """The folds' records as the weekly backtest's result (the best training window chosen)."""
    out = scale.merge_backtest(items, records, settings)
    get_run_logger().info("backtest: mean %s over %s fold(s)", out.get("mean"), out.get("n_folds_used"))
    return out
