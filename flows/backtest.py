"""The weekly backtest on its own, its (training window, fold) pairs spread as task runs (on
Dask workers when ``scale.dask_address`` is set): the same result as the weekly flow's
``backtest`` step, for choosing ``windows.candidate_train_weeks`` on a cluster."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks import dask as d
from tasks import weekly as w


@flow(name="backtest", log_prints=True)
def backtest(as_of: datetime | None = None, config: str | None = None) -> Any:
    """Rolling-origin backtest of every candidate training window for the week of ``as_of``."""
    when = as_of or flow_run.get_scheduled_start_time() or datetime.now()
    ctx = w.prepare(config, {}, f"flow-run:{flow_run.get_id() or 'local'}")
    window = d.load_window(ctx, when)
    items = d.backtest_items(window, ctx.settings)
    if not items:
        return {"as_of": window.as_of.isoformat(), "folds": 0, "result": None}
    with d.task_runner(ctx.settings.scale.dask_address) as runner:
        params = [
            {"labelled": window.labelled, "contract": ctx.contract, "item": it, "settings": ctx.settings}
            for it in items
        ]
        records = d.spread(runner, d.backtest_fold, params)
    result = d.merge_backtest(items, records, ctx.settings)
    return {"as_of": window.as_of.isoformat(), "folds": len(items), "result": result}
