"""The progressive rollout: start a challenger (when named), then one decision per interval —
shadow, canary steps, promote or revert — until the rollout ends or ``max_decisions`` is reached.
The rules live in driftline.rollout; this file wires the tasks, the model's concurrency slot
(held per decision, so a decision never interleaves with a weekly run's registration) and the
run's final state."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from tasks import rollout as t
from tasks import weekly as w
from tasks._common import model_slot


@flow(name="rollout", log_prints=True)
def rollout(
    version: str | None = None,
    interval_seconds: float | None = None,
    max_decisions: int | None = None,
    model: str | None = None,
    config: str | None = None,
) -> Any:
    """Roll ``version`` out (start it unless a rollout is active), deciding every ``interval_seconds``.

    ``interval_seconds`` defaults to settings.rollout.interval_seconds; without ``max_decisions``
    the run lasts until the rollout is promoted, reverted or aborted. ``model`` (set by the
    ``driftline.challenger.registered`` trigger) must name the settings' model, or the run does
    nothing: one model's event never moves another model's rollout.
    """
    version = str(version) if version not in (None, "") else None  # an event without a version: step only
    ctx = w.prepare(config, {}, f"flow-run:{flow_run.get_id() or 'local'}")
    name = ctx.settings.model_name
    if model is not None and model != name:
        return Completed(message=f"event for model {model!r}; these settings roll out {name!r}: nothing to do")
    interval = ctx.settings.rollout.interval_seconds if interval_seconds is None else interval_seconds

    current = t.status(ctx)
    started = False
    if version is not None and (current is None or not current.active):
        with model_slot(name):
            got = t.start(ctx, version, "challenger registered: rollout started by the rollout flow")
        if isinstance(got, t.Refused):
            return Failed(message=got.message, data={"model": name, "version": version, "code": got.code})
        current, started = got, True
    elif version is not None and current is not None and current.challenger != str(version):
        return Failed(
            message=f"rollout {current.rollout_id} of version {current.challenger} is {current.phase}; "
            f"version {version} waits until it ends (or: driftline rollout abort)",
            data={"model": name, "version": version, "code": "rollout_active"},
        )

    decisions: list[dict[str, Any]] = []
    while current is not None and current.active and (max_decisions is None or len(decisions) < max_decisions):
        if decisions or started:
            time.sleep(interval)
        with model_slot(name):
            decision = t.decide(ctx)
        if isinstance(decision, t.Refused):
            return Failed(message=decision.message, data={"model": name, "code": decision.code})
        decisions.append(t.publish(ctx, current, decision))
        current = decision.rollout

    summary = t.summarize(ctx, current, decisions, started)
    if current is None:
        return Completed(message="no rollout to decide on", data=summary)
    where = f"{current.phase} at {current.share:g}%" if current.active else current.phase
    said = f"rollout {current.rollout_id} of version {current.challenger}: {where}"
    return Completed(message=f"{said} after {len(decisions)} decision(s)", data=summary)
