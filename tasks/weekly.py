"""Tasks of the weekly refresh-and-retrain flow; each wraps one step in driftline.weekly."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from driftline import weekly
from tasks._common import RETRIES, RETRY_DELAY_SECONDS, RunContext, transient

IO = {"retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_SECONDS, "retry_condition_fn": transient}


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(config: str | None, overrides: dict[str, Any], actor: str) -> RunContext:
    """Load settings and contract; open the store and the registry."""
    from driftline.contract import load_contract
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings
    from driftline.store import Store

    settings = load_settings(config, **overrides)
    if settings.contract is None:
        from driftline.errors import ConfigError

        raise ConfigError("no contract: set 'contract:' in driftline.yaml (or DRIFTLINE_CONTRACT)")
    settings.ensure_home()
    contract = load_contract(settings.contract)
    store = Store.from_settings(settings, contract).create()
    return RunContext(settings, contract, store, ModelRegistry.from_settings(settings), actor)


@task(name="load-window", cache_policy=NO_CACHE, **IO)
def load_window(ctx: RunContext, as_of: Any) -> weekly.Window:
    """Labelled rows for the split and folds, and the recent production window."""
    window = weekly.load_window(ctx.store, ctx.contract, ctx.settings, as_of)
    get_run_logger().info("window %s", json.dumps(window.summary(), default=str))
    return window


@task(name="load-champion", cache_policy=NO_CACHE, **IO)
def load_champion(ctx: RunContext) -> weekly.Champion | None:
    """The serving model with its reference profile and training sample."""
    champion = weekly.load_champion(ctx.registry, ctx.contract)
    get_run_logger().info("champion: %s", champion.version if champion else "none yet")
    return champion


@task(name="refresh-test-set", cache_policy=NO_CACHE)
def build_datasets(ctx: RunContext, window: weekly.Window, champion: weekly.Champion | None) -> weekly.Datasets:
    """Temporal split and the refreshed production-mirror test set (Parquet, content-hashed)."""
    rng = np.random.default_rng(weekly.sample_seed(ctx.settings.training.seed, window.split))
    out = ctx.settings.home / "test_sets"
    data = weekly.build_datasets(
        window, ctx.contract, ctx.settings, rng, out, weekly.known_vocabulary(champion, ctx.contract)
    )
    get_run_logger().info("datasets %s", json.dumps(data.summary()))
    return data


@task(name="validate-and-skew", cache_policy=NO_CACHE)
def check_data(
    ctx: RunContext, datasets: weekly.Datasets, window: weekly.Window, champion: weekly.Champion | None
) -> weekly.DataCheck:
    """GX suites and training–serving skew; publishes an artifact when something is wrong."""
    check = weekly.check_data(datasets, window.recent, ctx.contract, champion)
    if check.blocked:
        lines = ["# Data check blocked the run", "", *[f"- {r}" for r in check.reasons]]
        if check.skew_markdown:
            lines += ["", check.skew_markdown]
        create_markdown_artifact("\n".join(lines), key="data-check", description="why the run stopped")
    get_run_logger().info("data check %s", json.dumps(check.summary()))
    return check


@task(name="assess-drift", cache_policy=NO_CACHE)
def assess_drift(
    ctx: RunContext,
    window: weekly.Window,
    datasets: weekly.Datasets,
    champion: weekly.Champion | None,
    trigger: str,
    force_retrain: bool,
    alerted_features: list[str] | None = None,
) -> weekly.DriftAssessment:
    """Drift against the champion's reference profile and the trigger policy's decision."""
    a = weekly.assess_drift(
        window.recent, datasets, ctx.contract, ctx.settings, champion, trigger, force_retrain, alerted_features
    )
    get_run_logger().info("decision %s", json.dumps(a.summary(), default=str))
    return a


@task(name="train-candidate", cache_policy=NO_CACHE)
def train_candidate(ctx: RunContext, datasets: weekly.Datasets) -> weekly.Candidate:
    """Fit the pipeline on the training window and evaluate it on the refreshed test set."""
    c = weekly.train_candidate(datasets, ctx.contract, ctx.settings)
    get_run_logger().info("candidate metrics %s", json.dumps(c.metrics, default=str))
    return c


@task(name="backtest", cache_policy=NO_CACHE)
def backtest(ctx: RunContext, window: weekly.Window) -> dict[str, Any] | None:
    """Rolling-origin backtest: the primary metric's mean and spread over recent folds."""
    return weekly.run_backtest(window, ctx.contract, ctx.settings)


@task(name="gates", cache_policy=NO_CACHE)
def judge(
    ctx: RunContext, candidate: weekly.Candidate, assessment: weekly.DriftAssessment, datasets: weekly.Datasets
) -> Any:
    """Every promotion gate's verdict: the paired comparison with the champion on the same rows."""
    report = weekly.judge_candidate(candidate, assessment, datasets, ctx.contract, ctx.settings)
    get_run_logger().info("gates %s", json.dumps(report.to_dict(), default=str))
    return report


@task(name="register", cache_policy=NO_CACHE, **IO)
def register(ctx: RunContext, **parts: Any) -> weekly.Registration:
    """Register the candidate in MLflow (idempotent) and move aliases when it passed."""
    from driftline.drift import render_html

    assessment = parts["assessment"]
    html = render_html(assessment.report) if assessment.report is not None else None
    reg = weekly.register_candidate(
        ctx.registry,
        contract=ctx.contract,
        settings=ctx.settings,
        actor=ctx.actor,
        drift_html=html,
        **parts,
    )
    get_run_logger().info("registered version %s (created=%s, promoted=%s)", reg.version, reg.created, reg.promoted)
    return reg


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(ctx: RunContext, **parts: Any) -> dict[str, Any]:
    """A markdown artifact that explains the run: window, sizes, drift, metrics, gates, action."""
    summary = weekly.run_summary(model_name=ctx.settings.model_name, **parts)
    create_markdown_artifact(weekly.summary_markdown(summary), key="weekly-run", description=summary["action"])
    return summary


def code_version() -> str:
    """The git sha of the running code (plain call, not a task: it is cheap)."""
    return weekly.code_version()


def idempotency_key(ctx: RunContext, window: weekly.Window, datasets: weekly.Datasets) -> str:
    """Windows + data hashes + code version + contract: the same week maps to the same version."""
    return weekly.idempotency_key(window.split, datasets, weekly.code_version(), ctx.contract)
