"""The weekly job: refresh the test set, rebuild splits, validate, measure drift, retrain on a
trigger, gate, and register in MLflow. The steps and their order live in driftline.pipeline (one
copy of the wiring for the flow, the benchmark and the tests); this file wires settings, the
model's concurrency slot and the run's final state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from tasks import weekly as t
from tasks._common import model_slot

Trigger = Literal["schedule", "drift", "performance", "manual", "bootstrap"]


@flow(name="refresh-and-retrain", log_prints=True)
def refresh_and_retrain(
    as_of: datetime | None = None,
    trigger: Trigger = "schedule",
    force_retrain: bool = False,
    alerted_features: list[str] | None = None,
    config: str | None = None,
    train_weeks: int | None = None,
    test_weeks: int | None = None,
    label_delay_days: int | None = None,
    auto_promote: bool | None = None,
) -> Any:
    """Run one week's refresh-and-retrain; returns the run summary (or a Failed state saying why)."""
    overrides: dict[str, Any] = {}
    windows = {
        k: v
        for k, v in (("train_weeks", train_weeks), ("test_weeks", test_weeks), ("label_delay_days", label_delay_days))
        if v is not None
    }
    if windows:
        overrides["windows"] = windows
    if auto_promote is not None:
        overrides["gates"] = {"auto_promote": auto_promote}
    actor = f"flow-run:{flow_run.get_id() or 'local'}"
    when = as_of or flow_run.get_scheduled_start_time() or datetime.now()

    ctx = t.prepare(config, overrides, actor)
    # One run per model at a time: the weekly schedule and a drift retrain never overlap.
    with model_slot(ctx.settings.model_name):
        outcome = t.run_week(ctx, when, trigger, force_retrain, alerted_features)
    if outcome.status == "blocked":
        return Failed(message=outcome.message, data=outcome.summary)
    return Completed(message=outcome.message, data=outcome.summary)
