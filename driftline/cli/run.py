"""Commands that start flows: ``driftline run <flow>`` and ``driftline demo``.

The CLI package (this module and ``demo.py``) is the only part of the library allowed to import
Prefect flows, lazily inside the commands, so the rest of ``driftline`` stays usable without an
orchestrator.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from driftline.cli._common import STATE, contract_for, emit_json, settings
from driftline.errors import DriftlineError, InputError

FLOWS = ("refresh-and-retrain", "drift-monitor")
TRIGGERS = ("schedule", "drift", "performance", "manual", "bootstrap")  # = driftline.weekly.TRIGGERS (tested)


def quiet_environment() -> dict[str, str]:
    """Environment defaults for commands that start flows: no Prefect log lines or telemetry."""
    return {
        "PREFECT_LOGGING_LEVEL": "CRITICAL",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }


def _quiet_prefect() -> None:
    """Keep Prefect's log lines (and its tracebacks) out of the terminal unless the user set
    PREFECT_LOGGING_LEVEL: the command prints its own summary and one-line errors."""
    for key, value in quiet_environment().items():
        os.environ.setdefault(key, value)


@contextmanager
def quiet_prefect_logs() -> Iterator[None]:
    """Silence Prefect's run loggers for the duration (also when Prefect was already set up in
    this process), unless the user chose a level with PREFECT_LOGGING_LEVEL."""
    if os.environ.get("PREFECT_LOGGING_LEVEL", "CRITICAL") != "CRITICAL":
        yield
        return
    # Prefect re-applies its logging config when a run starts, so per-logger levels do not
    # stick; switch logging off for the call instead (the command reports through typer).
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _state_summary(state: Any) -> tuple[bool, dict[str, Any] | None, str, BaseException | None]:
    """(failed?, summary dict, message, the exception that ended the run) from a flow's state."""
    message = state.message or ""
    data = None
    error = None
    try:
        data = state.result(raise_on_failure=False)
    except Exception:  # the result of a crashed run may not be retrievable
        data = None
    if isinstance(data, BaseException):
        error = data
        message = str(data) if isinstance(data, DriftlineError) else (message or f"{type(data).__name__}: {data}")
        data = None
    if data is not None and not isinstance(data, dict):
        data = None
    return state.is_failed() or state.is_crashed(), data, message, error


def run_cmd(
    flow_name: str = typer.Argument(..., help="refresh-and-retrain or drift-monitor."),
    as_of: datetime | None = typer.Option(None, "--as-of", help="Run as if it were this time (default: now)."),
    trigger: str = typer.Option(
        "manual", help="Recorded trigger: " + ", ".join(TRIGGERS) + " (drift forces a retrain)."
    ),
    force_retrain: bool = typer.Option(False, "--force-retrain", help="Retrain even when no trigger fires."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run a flow once, now, on the local Prefect API (or the server in PREFECT_API_URL)."""
    if flow_name not in FLOWS:
        raise InputError(f"unknown flow {flow_name!r}; choose one of: {', '.join(FLOWS)}")
    if trigger not in TRIGGERS:
        raise InputError(f"unknown trigger {trigger!r}; choose one of: {', '.join(TRIGGERS)}")
    # Settings and contract errors surface here, in one line, before Prefect starts.
    contract_for(None, settings())
    _quiet_prefect()
    config = str(STATE.config) if STATE.config else None
    with quiet_prefect_logs():
        if flow_name == "refresh-and-retrain":
            from flows.refresh_and_retrain import refresh_and_retrain

            state = refresh_and_retrain(
                as_of=as_of, trigger=trigger, force_retrain=force_retrain, config=config, return_state=True
            )
        else:
            from flows.drift_monitor import drift_monitor

            state = drift_monitor(as_of=as_of, config=config, return_state=True)
    failed, summary, message, error = _state_summary(state)
    if isinstance(error, DriftlineError):
        raise error  # unusable input or settings: one line, exit 2
    if as_json:
        emit_json({"state": state.type.value, "message": message, "summary": summary})
    else:
        what = (summary or {}).get("action") or (summary or {}).get("level", "")
        typer.echo(f"{flow_name}: {state.type.value.lower()} — {message or what}")
    if failed:
        raise typer.Exit(1)


def demo_cmd(
    workdir: Path | None = typer.Option(None, "--workdir", help="Keep all demo state here (default: .driftline/)."),
    weeks: int = typer.Option(16, min=8, help="Weeks of simulated traffic."),
    users: int = typer.Option(4000, min=500, help="Simulated users."),
    first_week: int = typer.Option(4, min=3, help="First week the weekly flow runs."),
    seed: int = typer.Option(7, help="Seed of the simulation."),
) -> None:
    """Simulate a churn model's quarter, run the weekly flow week by week, and show the versions."""
    _quiet_prefect()
    from driftline.cli.demo import run_demo

    run_demo(workdir=workdir, weeks=weeks, users=users, first_week=first_week, seed=seed)


def register(app: typer.Typer) -> None:
    """Add the flow commands to the app."""
    app.command("run")(run_cmd)
    app.command("demo")(demo_cmd)
