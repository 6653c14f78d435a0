"""The weekly job: refresh the test set, rebuild splits, validate, measure drift, retrain on a
trigger, gate, and register in MLflow. Logic lives in driftline.weekly; this file only wires."""

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
        window = t.load_window(ctx, when)
        champion = t.load_champion(ctx)
        datasets = t.build_datasets(ctx, window, champion)
        check = t.check_data(ctx, datasets, window, champion)
        if check.blocked:
            summary = t.publish_summary(ctx, window=window, datasets=datasets, check=check)
            return Failed(message="data check blocked the run: " + "; ".join(check.reasons), data=summary)

        assessment = t.assess_drift(ctx, window, datasets, champion, trigger, force_retrain, alerted_features)
        if assessment.action != "retrain":
            summary = t.publish_summary(ctx, window=window, datasets=datasets, check=check, assessment=assessment)
            return Completed(message=f"no retrain ({assessment.action})", data=summary)

        backtest = t.backtest.submit(ctx, window)
        candidate = t.train_candidate(ctx, datasets)
        gates = t.judge(ctx, candidate, assessment, datasets)
        registration = t.register(
            ctx,
            candidate=candidate,
            datasets=datasets,
            window=window,
            assessment=assessment,
            gates=gates,
            check=check,
            backtest=backtest.result(),
            champion=champion,
            key=t.idempotency_key(ctx, window, datasets),
            code=t.code_version(),
        )
        return t.publish_summary(
            ctx,
            window=window,
            datasets=datasets,
            check=check,
            assessment=assessment,
            candidate=candidate,
            gates=gates,
            registration=registration,
            backtest=backtest.result(),
        )
