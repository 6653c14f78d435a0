"""The weekly job as one typed pipeline: an explicit list of steps, run in order by one runner.

:func:`run_week` is the only copy of the wiring. The Prefect flow runs it with a caller that
turns each step into a task run (retries, logging, artifacts: ``tasks/weekly.py``); the
benchmark, replay and the tests run it with :func:`plain`. Each step is a function of
:mod:`driftline.weekly` from typed inputs to a typed result.

A run's time is normalised once, here, into a :class:`Week` (as-of, test window, backtest
folds, recent window, all naive UTC) that the steps receive; no step converts times itself.

Steps, in order (the names are the task names):

========================  ==========================================================
``load-window``           labelled rows of the split and folds, recent traffic
``load-champion``         the serving model, verified, with its reference artifacts
``refresh-test-set``      temporal split and the weighted production-mirror sample
``validate-and-skew``     GX suites and training–serving skew; may stop the run
``collect-feedback``      the deployed model's errors into the feedback pool, hard cases to review
``decision-history``      the earlier weeks' decisions (a persisting concern escalates)
``assess-drift``          drift, the champion on the test set, the trigger policy
``record-decision``       this week's decision, for the weeks after
``edge-cases``            the edge-case suite mined from the champion's logged rows (stored)
``backtest``              rolling-origin folds for each candidate training window; the best wins
``feedback-rows``         the chosen window's rows with the feedback pool's, under the cap
``train-candidate``       fit on the chosen window, score the test set, fit the reference profile
``edge-check``            candidate and champion on the edge slices and under perturbations
``gates``                 the paired comparison with the champion and the edge-case gates
``register``              MLflow version, registration record, compare-and-set aliases
========================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline import weekly
from driftline.validation.docs import docs_folder

STEPS = (
    "load-window",
    "load-champion",
    "refresh-test-set",
    "validate-and-skew",
    "collect-feedback",
    "decision-history",
    "assess-drift",
    "record-decision",
    "edge-cases",
    "backtest",
    "feedback-rows",
    "train-candidate",
    "edge-check",
    "gates",
    "register",
)

Caller = Callable[..., Any]
"""``call(step_name, fn, *args, **kwargs) -> fn(*args, **kwargs)``, possibly as a Prefect task run."""


def plain(step: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a step as a plain call (the benchmark's and the tests' caller)."""
    return fn(*args, **kwargs)


Week = weekly.Week
"""The run's time, normalised once (defined with the steps that receive it)."""


@dataclass
class Context:
    """Settings, contract, store and registry of one run (built once, passed to every step)."""

    settings: Any
    contract: Any
    store: Any
    registry: Any
    actor: str


@dataclass
class Outcome:
    """How a run ended (``blocked`` / ``no_retrain`` / ``registered``) and what it saw and did."""

    status: str
    message: str
    summary: dict[str, Any]
    parts: dict[str, Any] = field(default_factory=dict)  # the typed step results, for callers and tests


def run_week(
    ctx: Context,
    as_of: Any,
    trigger: str = "schedule",
    force_retrain: bool = False,
    alerted_features: list[str] | None = None,
    *,
    call: Caller = plain,
    test_set_dir: Any = None,
) -> Outcome:
    """Run one week's refresh-and-retrain through ``call``; the single copy of the wiring."""
    s, c = ctx.settings, ctx.contract
    week = Week.of(as_of, s.windows)
    out_dir = test_set_dir if test_set_dir is not None else s.output_location("test_sets")
    parts: dict[str, Any] = {}

    window = parts["window"] = call("load-window", weekly.load_window, ctx.store, c, s, week)
    champion = call("load-champion", weekly.load_champion, ctx.registry, c)
    datasets = parts["datasets"] = call(
        "refresh-test-set",
        weekly.build_datasets,
        window,
        c,
        s,
        np.random.default_rng(weekly.sample_seed(s.training.seed, week.split)),
        out_dir,
        weekly.known_vocabulary(champion, c),
    )
    docs = docs_folder(s.reports_dir, s.model_name)
    check = parts["check"] = call(
        "validate-and-skew", weekly.check_data, datasets, window.recent, c, champion, docs, week, s.model_name
    )
    if check.blocked:
        summary = weekly.run_summary(model_name=s.model_name, **parts)
        return Outcome("blocked", "data check blocked the run: " + "; ".join(check.reasons), summary, parts)

    call("collect-feedback", weekly.collect_feedback, ctx.store, window, champion, c, s, week)
    prior = call("decision-history", weekly.prior_decisions, ctx.registry, s.model_name, week)
    assessment = parts["assessment"] = call(
        "assess-drift", weekly.assess_drift, window.recent, datasets, c, s, champion, trigger, force_retrain,
        alerted_features, prior,
    )  # fmt: skip
    call(
        "record-decision", weekly.record_decision, ctx.registry, s.model_name, week, champion, assessment,
        s.gates.primary_metric,
    )  # fmt: skip
    suite = call("edge-cases", weekly.edge_suite, window, champion, c, s)  # rebuilt every week, stored
    if assessment.action != "retrain":
        summary = weekly.run_summary(model_name=s.model_name, **parts)
        return Outcome("no_retrain", f"no retrain ({assessment.action})", summary, parts)

    backtest = parts["backtest"] = call("backtest", weekly.run_backtest, window, c, s)
    feedback = call("feedback-rows", weekly.feedback_training, ctx.store, datasets, window, c, s, backtest)
    candidate = parts["candidate"] = call(
        "train-candidate", weekly.train_candidate, datasets, c, s, window, backtest, feedback
    )
    edge = call("edge-check", weekly.edge_check, suite, candidate, champion, datasets, c, s)
    gates = parts["gates"] = call("gates", weekly.judge_candidate, candidate, assessment, datasets, c, s, edge)
    code = weekly.code_version()
    parts["registration"] = call(
        "register",
        weekly.register_candidate,
        ctx.registry,
        candidate=candidate,
        datasets=datasets,
        window=window,
        contract=c,
        settings=s,
        assessment=assessment,
        gates=gates,
        check=check,
        backtest=backtest,
        champion=champion,
        key=weekly.idempotency_key(week.split, datasets, code, c),
        code=code,
        actor=ctx.actor,
    )
    summary = weekly.run_summary(model_name=s.model_name, **parts)
    return Outcome("registered", summary["action"], summary, parts)
