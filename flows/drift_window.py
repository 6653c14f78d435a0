"""Drift of a large window kept as partitioned Parquet (a folder or an s3:// prefix): each
partition is counted on the champion's reference profile as its own task (on Dask workers when
``scale.dask_address`` is set), the counts are merged exactly and judged, and the report is
written under the outputs location."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from tasks import dask as d
from tasks import weekly as w


@flow(name="drift-window", log_prints=True)
def drift_window(location: str, features: list[str] | None = None, config: str | None = None) -> Any:
    """Compare every partition under ``location`` with the champion's reference profile."""
    ctx = w.prepare(config, {}, f"flow-run:{flow_run.get_id() or 'local'}")
    champion = w.load_champion(ctx)
    if champion is None or champion.profile is None:
        return Failed(message="no champion with a reference profile yet: run refresh-and-retrain first")
    parts = d.list_partitions(location)
    with d.task_runner(ctx.settings.scale.dask_address) as runner:
        counts = d.spread(
            runner,
            d.count_partition,
            [
                {"profile": champion.profile, "location": p, "features": features, "contract": ctx.contract}
                for p in parts
            ],
        )
    report = d.merge_and_evaluate(champion.profile, counts, ctx.settings, ctx.contract)
    name = f"drift-window-{flow_run.get_id() or 'local'}.html"
    path = d.write_report(ctx.settings, report, name)
    return d.publish_window(location, parts, champion, report, path)
