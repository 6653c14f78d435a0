"""Tasks of the daily drift monitor."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from driftline import monitor
from tasks._common import RETRIES, RETRY_DELAY_SECONDS, RunContext, transient


@task(
    name="measure-drift",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
    retry_condition_fn=transient,
)
def measure(ctx: RunContext, champion: Any, as_of: Any, days: int | None) -> monitor.MonitorResult:
    """The last window's drift against the champion's reference profile."""
    result = monitor.evaluate_window(ctx.store, ctx.contract, ctx.settings, champion, as_of, days)
    get_run_logger().info(
        "drift monitor: %s over %d rows; flagged %s", result.level, result.n_rows, list(result.flagged)
    )
    return result


@task(name="write-drift-report", cache_policy=NO_CACHE)
def write_report(ctx: RunContext, result: monitor.MonitorResult) -> str | None:
    """HTML report under the outputs' reports folder (a folder or s3://) plus a markdown artifact; returns where."""
    from driftline import io
    from driftline.drift import render_html
    from driftline.drift.report import ReportContext

    path = None
    if result.report is not None:
        s = ctx.settings
        context = ReportContext(
            model_name=s.model_name,
            version=result.champion_version,
            current_window=(result.window_start.isoformat(), result.window_end.isoformat()),
        )
        where = s.output_location("reports", f"drift-{result.window_end:%Y%m%dT%H%M}.html")
        path = io.write_text(where, render_html(result.report, context=context))
    create_markdown_artifact(monitor.report_markdown(result, path), key="drift-monitor", description=result.level)
    return path


def _resource(ctx: RunContext, result: monitor.MonitorResult) -> dict[str, str]:
    name = ctx.settings.model_name
    return {
        "prefect.resource.id": f"driftline.model.{name}",
        "prefect.resource.name": name,
        "driftline.champion_version": str(result.champion_version or ""),
    }


@task(name="emit-drift-event", cache_policy=NO_CACHE)
def emit(ctx: RunContext, result: monitor.MonitorResult) -> str | None:
    """Emit driftline.drift.alert / .warn unless stable or within the episode's cool-down; returns the event sent."""
    logger = get_run_logger()
    state = monitor.load_alert_state(ctx.settings.home, ctx.store, ctx.settings.model_name)
    if not monitor.should_emit(result, state, ctx.settings.drift.cooldown_hours):
        if result.level == "alert":
            logger.info(
                "alert suppressed: champion %s already alerted in this episode (cool-down %.0f h)",
                result.champion_version,
                ctx.settings.drift.cooldown_hours,
            )
        return None
    name = ctx.settings.model_name
    emit_event(event=result.event, resource=_resource(ctx, result), payload=result.payload(name))
    if result.level == "alert":
        monitor.record_alert(ctx.settings.home, result, ctx.store, ctx.settings.model_name)
    logger.info("emitted %s for %s", result.event, name)
    return result.event


@task(name="emit-skew-event", cache_policy=NO_CACHE)
def emit_skew(ctx: RunContext, result: monitor.MonitorResult) -> str | None:
    """Emit driftline.skew.detected when drift was explained by a serving vocabulary skew; returns the event sent."""
    payload = result.skew_payload(ctx.settings.model_name)
    if payload is None:
        return None
    emit_event(event=monitor.SKEW_EVENT, resource=_resource(ctx, result), payload=payload)
    get_run_logger().info("emitted %s for %s: %s", monitor.SKEW_EVENT, ctx.settings.model_name, payload["features"])
    return monitor.SKEW_EVENT
