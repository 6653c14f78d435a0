"""Tasks of the rollout flow: thin wrappers around :class:`driftline.rollout.RolloutRunner`.

``start`` points ``challenger`` at a version and begins in shadow; ``decide`` takes one decision
(retried on TransientError: a decision re-read from the store after a failure is the same one,
and a promotion that landed before the failure is recognised as done); ``publish`` leaves the
decision's ``rollout-decision`` artifact and emits ``driftline.rollout.<action>``; ``summarize``
leaves the run's ``rollout-run`` table. A refusal or unusable input (any DriftlineError but a TransientError) comes back
as :class:`Refused` (one line, logged without a traceback) for the flow to fail on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from driftline.errors import DriftlineError, RefusedError, TransientError
from driftline.registry.rollouts import Rollout
from driftline.rollout import RolloutDecision, RolloutRunner, Why
from driftline.rollout_text import decision_markdown, decision_row, event_payload, one_line, pairs
from tasks._common import RETRIES, RETRY_DELAY_SECONDS, RunContext, transient

IO = {"retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_SECONDS, "retry_condition_fn": transient}
EVENT_PREFIX = "driftline.rollout."
CHALLENGER_EVENT = "driftline.challenger.registered"
"""Emitted when a version becomes ``challenger``; the ``rollout`` deployment starts on it."""


@dataclass(frozen=True)
class Refused:
    """A start or decision driftline refused: the one line to fail the run with, and its code."""

    message: str
    code: str


def runner(ctx: RunContext) -> RolloutRunner:
    """The rollout runner of the run's model."""
    return RolloutRunner(ctx.registry, ctx.store, ctx.contract, ctx.settings)


def resource(model: str, rollout: Rollout | None = None) -> dict[str, str]:
    """The event resource of a model (the same id as the drift events: ``driftline.model.<name>``)."""
    out = {"prefect.resource.id": f"driftline.model.{model}", "prefect.resource.name": model}
    if rollout is not None:
        out["driftline.challenger_version"] = str(rollout.challenger)
        out["driftline.champion_version"] = str(rollout.champion)
    return out


@task(name="rollout-status", cache_policy=NO_CACHE, **IO)
def status(ctx: RunContext) -> Rollout | None:
    """The model's current (or last) rollout."""
    r = runner(ctx).status()
    get_run_logger().info("rollout: %s", "none yet" if r is None else one_line(r))
    return r


@task(name="start-rollout", cache_policy=NO_CACHE, **IO)
def start(ctx: RunContext, version: str, reason: str) -> Rollout | Refused:
    """Point ``challenger`` at ``version`` and begin its rollout in shadow (or say why not)."""
    logger = get_run_logger()
    try:
        r = runner(ctx).start(str(version), actor=ctx.actor, reason=reason)
    except TransientError:
        raise  # retried
    except DriftlineError as e:  # refused, or not a version of this model
        logger.error("rollout of version %s refused: %s", version, e)
        return Refused(str(e), getattr(e, "code", "invalid"))
    logger.info("started %s", one_line(r))
    return r


@task(name="rollout-decision", cache_policy=NO_CACHE, **IO)
def decide(ctx: RunContext) -> RolloutDecision | Refused:
    """One decision for the active rollout, applied (hold, investigate, advance, promote, revert, abort).

    A decision that lost a race (the rollout row changed meanwhile, e.g. a ``pause`` from the CLI)
    applied nothing: it comes back as a hold with reason ``moved`` and the next interval decides.
    """
    run = runner(ctx)
    try:
        return run.step(actor=ctx.actor)
    except TransientError:
        raise  # retried
    except RefusedError as e:
        if e.code == "moved":
            get_run_logger().warning("decision not applied: %s", e)
            return RolloutDecision("hold", [Why("moved", "hold", str(e))], None, run.status())
        get_run_logger().error("rollout decision refused: %s", e)
        return Refused(str(e), e.code)
    except DriftlineError as e:
        get_run_logger().error("rollout decision failed: %s", e)
        return Refused(str(e), "invalid")


@task(name="publish-decision", cache_policy=NO_CACHE)
def publish(ctx: RunContext, before: Rollout | None, decision: RolloutDecision) -> dict[str, Any]:
    """The decision's ``rollout-decision`` artifact and ``driftline.rollout.<action>`` event; returns its table row."""
    model = ctx.settings.model_name
    after = decision.rollout
    shown = before if before is not None else after
    create_markdown_artifact(
        decision_markdown(model, before, decision, metric=ctx.settings.gates.primary_metric),
        key="rollout-decision",
        description=f"{decision.action}: " + "; ".join(w.code for w in decision.reasons),
    )
    event = EVENT_PREFIX + decision.action
    emit_event(event=event, resource=resource(model, shown), payload=event_payload(model, before, decision))
    get_run_logger().info(
        "%s: %s (%s)", event, one_line(after) if after else "no rollout", "; ".join(w.text for w in decision.reasons)
    )
    return {**decision_row(before, decision), "event": event}


@task(name="summarize-rollout", cache_policy=NO_CACHE)
def summarize(
    ctx: RunContext, rollout: Rollout | None, decisions: list[dict[str, Any]], started: bool
) -> dict[str, Any]:
    """The run's summary (returned by the flow) and its ``rollout-run`` table artifact."""
    summary: dict[str, Any] = {
        "model": ctx.settings.model_name,
        "started": started,
        "rollout": None if rollout is None else rollout.to_dict(),
        "active": bool(rollout is not None and rollout.active),
        "phase": None if rollout is None else rollout.phase,
        "share": None if rollout is None else rollout.share,
        "decisions": decisions,
        "last_action": decisions[-1]["action"] if decisions else None,
    }
    if decisions:
        create_table_artifact(
            [
                {
                    **d,
                    "reasons": ", ".join(d["reasons"]),
                    "requests": pairs(d["requests"]),
                    "labelled": pairs(d["labelled"]),
                }
                for d in decisions
            ],
            key="rollout-run",
            description=f"{len(decisions)} decision(s); now {one_line(rollout) if rollout else 'no rollout'}",
        )
    return summary


@task(name="emit-challenger-registered", cache_policy=NO_CACHE)
def emit_challenger_registered(
    model: str, version: str, champion: str | None = None, trigger: str | None = None
) -> str:
    """Announce a new ``challenger`` (what starts the ``rollout`` deployment); returns the event sent."""
    emit_event(
        event=CHALLENGER_EVENT,
        resource={**resource(model), "driftline.challenger_version": str(version)},
        payload={"model": model, "version": str(version), "champion_version": champion, "trigger": trigger},
    )
    return CHALLENGER_EVENT
