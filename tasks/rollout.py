"""Tasks of the rollout flow: thin wrappers around :class:`driftline.rollout.RolloutRunner`.

``start`` points ``challenger`` at a version and begins in shadow; ``decide`` takes one decision
(retried on TransientError: a decision re-read from the store after a failure is the same one,
and a promotion that landed before the failure is recognised as done); ``publish`` leaves the
decision's ``rollout-decision`` artifact and emits ``driftline.rollout.<action>``; ``summarize``
leaves the run's ``rollout-run`` table. A refusal or unusable input (any DriftlineError but a TransientError) comes back
as :class:`Refused` (one line, logged without a traceback) for the flow to fail on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from driftline.errors import DriftlineError, RefusedError, TransientError
from driftline.registry.rollouts import Rollout
from driftline.rollout import RolloutDecision, RolloutRunner, Why
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
    get_run_logger().info("rollout: %s", "none yet" if r is None else _one_line(r))
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
    logger.info("started %s", _one_line(r))
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
        "%s: %s (%s)", event, _one_line(after) if after else "no rollout", "; ".join(w.text for w in decision.reasons)
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
                    "requests": _pairs(d["requests"]),
                    "labelled": _pairs(d["labelled"]),
                }
                for d in decisions
            ],
            key="rollout-run",
            description=f"{len(decisions)} decision(s); now {_one_line(rollout) if rollout else 'no rollout'}",
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


# -- rendering ---------------------------------------------------------------------------------
def decision_row(before: Rollout | None, decision: RolloutDecision) -> dict[str, Any]:
    """One line of the run's table: where the rollout was, what was decided, where it is now."""
    after = decision.rollout
    ev = decision.evidence
    return {
        "phase": before.phase if before else (after.phase if after else "-"),
        "share": before.share if before else (after.share if after else 0.0),
        "action": decision.action,
        "reasons": [w.code for w in decision.reasons],
        "requests": dict(ev.requests) if ev else {},
        "labelled": dict(ev.labelled) if ev else {},
        "now": f"{after.phase} {after.share:g}%" if after else "-",
    }


def event_payload(model: str, before: Rollout | None, decision: RolloutDecision) -> dict[str, Any]:
    """What a ``driftline.rollout.<action>`` event carries (JSON-safe: undefined numbers are null)."""
    after = decision.rollout
    shown = before if before is not None else after
    payload = {
        "model": model,
        "rollout_id": shown.rollout_id if shown else None,
        "challenger_version": shown.challenger if shown else None,
        "champion_version": shown.champion if shown else None,
        "action": decision.action,
        "phase": shown.phase if shown else None,
        "share": shown.share if shown else None,
        "phase_after": after.phase if after else None,
        "share_after": after.share if after else None,
        "reasons": [w.to_dict() for w in decision.reasons],
        "evidence": None if decision.evidence is None else decision.evidence.to_dict(),
    }
    return json.loads(json.dumps(_finite(payload), default=str))


def decision_markdown(model: str, before: Rollout | None, decision: RolloutDecision, *, metric: str) -> str:
    """The decision as a reader of the flow run needs it: phase, sample sizes, metrics, action, reasons."""
    after = decision.rollout
    shown = before if before is not None else after
    if shown is None:
        head = [f"# Rollout of {model}", "", f"**{decision.action}**: no rollout"]
    else:
        where = _where(shown)
        now = _where(after) if after is not None else "-"
        head = [
            f"# Rollout {shown.rollout_id} of {model}: version {shown.challenger} vs champion {shown.champion}",
            "",
            f"**Decision: {decision.action}** at {where}{'' if now == where else f' → now {now}'}"
            + (" (paused)" if shown.paused else ""),
        ]
    lines = [*head, ""]
    ev = decision.evidence
    if ev is not None:
        variants = list(dict.fromkeys([*ev.requests, *ev.labelled, *ev.metric]))
        if variants:
            lines += ["| | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
            rows = [
                ("requests", ev.requests, "{:d}"),
                ("challenger failures", ev.errors, "{:d}"),
                ("p99 latency (ms)", ev.p99_ms, "{:.1f}"),
                ("labelled", ev.labelled, "{:d}"),
                ("positives", ev.positives, "{:d}"),
                (metric, ev.metric, "{:.4f}"),
            ]
            for label, values, fmt in rows:
                if values:
                    lines.append(f"| {label} | " + " | ".join(_fmt(values.get(v), fmt) for v in variants) + " |")
            if ev.interval:
                cells = []
                for v in variants:
                    iv = ev.interval.get(v)
                    cells.append(f"{_fmt(iv[0], '{:.4f}')} – {_fmt(iv[1], '{:.4f}')}" if iv else "-")
                lines.append(f"| {metric} 95% interval | " + " | ".join(cells) + " |")
            lines.append("")
        facts = []
        if ev.paired:
            facts.append(f"- paired requests (scored by both): {ev.paired}")
        if ev.agreement is not None:
            facts.append(f"- agreement at the threshold: {ev.agreement:.1%}")
        if ev.score_psi is not None and math.isfinite(ev.score_psi):
            facts.append(f"- score PSI between the models: {ev.score_psi:.3f}")
        if ev.paired_diff:
            est, low, high = ev.paired_diff
            champ = "" if ev.champion_metric is None else f" (champion {ev.champion_metric:.4f})"
            facts.append(
                f"- {metric}, challenger − champion on the same rows: {est:+.4f} [{low:+.4f}, {high:+.4f}]{champ}"
            )
        if ev.worst_segments:
            worst = ", ".join(
                f"{s['feature']}={s['value']} {s['disagreement']:.0%} of {s['rows']}" for s in ev.worst_segments
            )
            facts.append(f"- most disagreement: {worst}")
        if facts:
            lines += [*facts, ""]
    lines += ["| reason | level | metric | value | threshold | |", "|---|---|---|---|---|---|"]
    for w in decision.reasons:
        cells = [w.code, w.level, w.metric or "-", _fmt(w.value, "{:.4g}"), _fmt(w.threshold, "{:.4g}"), w.text]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _where(r: Rollout) -> str:
    if r.phase == "canary":
        return f"canary step {r.step + 1} ({r.share:g}%)"
    return r.phase


def _one_line(r: Rollout) -> str:
    return f"rollout {r.rollout_id} of version {r.challenger} (champion {r.champion}): {_where(r)}"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
