"""Tasks of the weekly refresh-and-retrain flow: each step of driftline.pipeline as a task run.

The wiring lives once, in :func:`driftline.pipeline.run_week`; here each step it calls becomes
a Prefect task run named after the step, with retries where a second try can help (reading the
store and the registry, registering), a log line of what it returned, and the artifacts a
reader of the run needs (``data-check`` when a run is blocked, ``weekly-run`` always).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from driftline import pipeline, weekly
from tasks._common import RETRIES, RETRY_DELAY_SECONDS, transient

IO = {"retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_SECONDS, "retry_condition_fn": transient}
RETRIED_STEPS = frozenset(
    {
        "load-window",
        "load-champion",
        "collect-feedback",
        "decision-history",
        "record-decision",
        "feedback-rows",
        "register",
    }
)
"""Steps that touch the store or the registry: retried on TransientError (the registration is idempotent)."""


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(config: str | None, overrides: dict[str, Any], actor: str) -> pipeline.Context:
    """Load settings and contract; open the store and the registry."""
    from driftline.contract import load_contract
    from driftline.errors import ConfigError
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings
    from driftline.store import Store

    settings = load_settings(config, **overrides)
    if settings.contract is None:
        raise ConfigError("no contract: set 'contract:' in driftline.yaml (or DRIFTLINE_CONTRACT)")
    settings.ensure_home()
    contract = load_contract(settings.contract)
    store = Store.from_settings(settings, contract).create()
    return pipeline.Context(settings, contract, store, ModelRegistry.from_settings(settings), actor)


@task(name="load-champion", cache_policy=NO_CACHE, **IO)
def load_champion(ctx: pipeline.Context) -> weekly.Champion | None:
    """The serving model, verified against its registration record, with its reference artifacts."""
    champion = weekly.load_champion(ctx.registry, ctx.contract)
    get_run_logger().info("champion: %s", champion.version if champion else "none yet")
    return champion


@task(cache_policy=NO_CACHE)
def step(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One pipeline step (renamed per step by :func:`call`)."""
    return fn(*args, **kwargs)


def call(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The pipeline's caller under Prefect: the step as a task run, then its log line and artifacts."""
    options: dict[str, Any] = {"name": name, "task_run_name": name}
    if name in RETRIED_STEPS:
        options.update(IO)
    result = step.with_options(**options)(fn, *args, **kwargs)
    _report(name, result)
    return result


def _report(name: str, result: Any) -> None:
    log = get_run_logger()
    if name == "load-window":
        log.info("window %s", json.dumps(result.summary(), default=str))
    elif name == "load-champion":
        log.info("champion: %s", result.version if result else "none yet")
    elif name == "refresh-test-set":
        log.info("datasets %s", json.dumps(result.summary(), default=str))
    elif name == "validate-and-skew":
        if result.blocked:
            lines = ["# Data check blocked the run", "", *[f"- {r}" for r in result.reasons]]
            if result.skew_markdown:
                lines += ["", result.skew_markdown]
            create_markdown_artifact("\n".join(lines), key="data-check", description="why the run stopped")
        log.info("data check %s", json.dumps(result.summary(), default=str))
    elif name == "assess-drift":
        log.info("decision %s", json.dumps(result.summary(), default=str))
    elif name == "train-candidate":
        log.info("candidate metrics %s", json.dumps(result.metrics, default=str))
    elif name == "gates":
        log.info("gates %s", json.dumps(result.to_dict(), default=str))
    elif name == "register":
        log.info("registered version %s (created=%s, promoted=%s)", result.version, result.created, result.promoted)


def run_week(
    ctx: pipeline.Context,
    as_of: Any,
    trigger: str,
    force_retrain: bool,
    alerted_features: list[str] | None,
) -> pipeline.Outcome:
    """The pipeline with every step as a task run; publishes the run's ``weekly-run`` artifact.

    Before the artifact, the week's figures go to the decision log (the reports' trend) and the
    week's drift report is written under the reports folder (:func:`driftline.story.publish_week`).
    """
    outcome = pipeline.run_week(ctx, as_of, trigger, force_retrain, alerted_features, call=call)
    publish(ctx, outcome)
    create_markdown_artifact(
        weekly.summary_markdown(outcome.summary), key="weekly-run", description=outcome.summary["action"]
    )
    announce_challenger(ctx.settings.model_name, outcome.summary)
    return outcome


def publish(ctx: pipeline.Context, outcome: pipeline.Outcome) -> dict[str, str]:
    """The week's figures and drift report (best effort: a report that cannot be written is logged, not fatal)."""
    from driftline.errors import DriftlineError
    from driftline.story import publish_week

    try:
        paths = publish_week(ctx.registry, ctx.settings, outcome.parts)
    except (DriftlineError, OSError) as e:
        get_run_logger().warning("drift report not written: %s", e)
        return {}
    outcome.summary.setdefault("reports", {}).update(paths)
    if paths:
        get_run_logger().info("drift report: %s", paths.get("drift_report"))
    return paths


def announce_challenger(model: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """Emit ``driftline.challenger.registered`` for a new passing candidate left for the rollout."""
    from tasks.rollout import emit_challenger_registered

    r = summary.get("registration") or {}
    passed = bool((summary.get("gates") or {}).get("passed"))
    if not (r.get("created") and passed and not r.get("promoted")):
        return None
    payload = {"model": model, "version": str(r["version"]), "previous_champion": r.get("previous_champion")}
    trigger = (summary.get("drift") or {}).get("trigger")
    emit_challenger_registered(model, payload["version"], payload["previous_champion"], trigger)
    return payload
