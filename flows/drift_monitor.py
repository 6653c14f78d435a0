"""The daily drift monitor: measure the last window against the champion, report, and emit
driftline.drift.alert / driftline.drift.warn (the trigger policy's level; alerts debounced per
episode) for the retrain-on-drift deployment, and driftline.skew.detected for serving skew."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks import monitor as m
from tasks import weekly as w


@flow(name="drift-monitor", log_prints=True)
def drift_monitor(as_of: datetime | None = None, days: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Compare the last ``days`` (default: settings.windows.monitor_days) with the champion's profile."""
    when = as_of or flow_run.get_scheduled_start_time() or datetime.now()
    ctx = w.prepare(config, {}, f"flow-run:{flow_run.get_id() or 'local'}")
    champion = w.load_champion(ctx)
    result = m.measure(ctx, champion, when, days)
    report = m.write_report(ctx, result)
    event = m.emit(ctx, result)
    skew_event = m.emit_skew(ctx, result)
    return {
        "level": result.level,
        "event": event,
        "skew_event": skew_event,
        "report": report,
        **result.payload(ctx.settings.model_name),
    }
