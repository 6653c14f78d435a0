"""Commands that start flows: ``driftline run <flow>`` and ``driftline demo``.

The CLI package (this module and ``demo.py``) is the only part of the library allowed to import
Prefect flows, lazily inside the commands, so the rest of ``driftline`` stays usable without an
orchestrator.

``driftline run`` streams the flow's own log lines (its flow and task run loggers, one line
each, no tracebacks) to stderr while it runs, and ends with the outcome on stdout. Those lines
also go to the Prefect API the run reports to (a server in ``PREFECT_API_URL``, else the
temporary local one), so a run started here shows its logs in the Prefect UI like a deployment
run. Prefect's other output (server start-up, its console handler) stays off the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
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


# Prefect reads these over its logging.yml at every (re)configuration, so the run loggers keep
# INFO even after Prefect re-applies its config (its default, NOTSET, would inherit the
# "prefect" logger's CRITICAL from quiet_environment and drop the lines for the API too).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
STREAM_ENVIRONMENT = {
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
}
MAX_LOG_LINE = 240


class TerminalLogHandler(logging.Handler):
    """One line per flow/task run record on the current stderr: time, run name, message.

    Left out, because the command's own last lines say it once: Prefect's "Finished in state …"
    lines and the error records that carry an exception (with their tracebacks) — the outcome
    or the one-line error follows. Retry notices and the tasks' own lines stay. The Prefect API
    still gets every record.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if message.startswith("Finished in state") or (record.levelno >= logging.ERROR and record.exc_info):
                return
            who = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None) or record.name
            first = (message.strip().splitlines() or [""])[0]
            if len(first) > MAX_LOG_LINE:
                first = first[: MAX_LOG_LINE - 1] + "…"
            level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
            when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
            sys.stderr.write(f"{when}  {who}  {level}{first}\n")
            sys.stderr.flush()
        except Exception:  # a log line must never break the run
            self.handleError(record)


def stream_environment() -> None:
    """Set (when unset) what a CLI-started run needs: quiet Prefect, run loggers at INFO.

    Call before Prefect is imported, like :func:`_quiet_prefect`.
    """
    _quiet_prefect()
    for key, value in STREAM_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


@contextmanager
def streamed_run_logs(show: bool = True) -> Iterator[None]:
    """For the block: the run loggers' lines on the terminal (unless not ``show``) and to the API.

    Call after Prefect is imported (its logging is configured then). The run loggers stop
    propagating to the root logger, whose Prefect console handler would print them a second
    time with tracebacks, and the root and MLflow loggers are held back so only the run's own
    lines reach the terminal; everything is restored afterwards.
    """
    handler = TerminalLogHandler(level=logging.INFO)
    saved: list[tuple[logging.Logger, int, bool]] = []
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if show:
            logger.addHandler(handler)
    for name, level in ((None, logging.CRITICAL), ("mlflow", logging.ERROR)):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(max(level, logger.level))
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the flow's log lines to stderr."),
) -> None:
    """Run a flow once, now, on the local Prefect API (or the server in PREFECT_API_URL).

    The flow's log lines stream to stderr (and to the Prefect API); the outcome ends the output:
    the action, version, reasons and report paths (drift-monitor: the level, the alerting
    features and the report). Exit 1 when the run failed, 2 for unusable settings or data.
    """
    if flow_name not in FLOWS:
        raise InputError(f"unknown flow {flow_name!r}; choose one of: {', '.join(FLOWS)}")
    if trigger not in TRIGGERS:
        raise InputError(f"unknown trigger {trigger!r}; choose one of: {', '.join(TRIGGERS)}")
    # Settings and contract errors surface here, in one line, before Prefect starts.
    contract_for(None, settings())
    stream_environment()
    config = str(STATE.config) if STATE.config else None
    if flow_name == "refresh-and-retrain":
        from flows.refresh_and_retrain import refresh_and_retrain as flow_fn

        kwargs: dict[str, Any] = {"as_of": as_of, "trigger": trigger, "force_retrain": force_retrain}
    else:
        from flows.drift_monitor import drift_monitor as flow_fn

        kwargs = {"as_of": as_of}
    with streamed_run_logs(show=not quiet):
        state = flow_fn(**kwargs, config=config, return_state=True)
    failed, summary, message, error = _state_summary(state)
    if isinstance(error, DriftlineError):  # unusable input or settings: one line, exit 2
        note = data_range_note()
        raise DriftlineError(f"{error}; {note}" if note else str(error), exit_code=error.exit_code) from None
    if flow_name == "drift-monitor" and summary is not None and not summary.get("n_rows"):
        summary["data_range"] = data_range_note()
    run_id = getattr(state.state_details, "flow_run_id", None)
    if as_json:
        emit_json({"state": state.type.value, "message": message, "flow_run_id": run_id, "summary": summary})
    else:
        for line in outcome_lines(flow_name, state.type.value.lower(), message, summary):
            typer.echo(line)
        if run_id:
            typer.echo(f"  flow run: {run_id} (its logs and artifacts are in Prefect)")
    if failed:
        raise typer.Exit(1)


def data_range_note() -> str:
    """Which times the store's predictions cover, for messages about a window with no data ('' if unknown)."""
    from driftline.store import Store

    try:
        s = settings()
        store = Store.from_settings(s, contract_for(None, s))
        try:
            bounds = store.time_bounds()
        finally:
            store.dispose()
    except Exception:  # the note is a hint; the error it is added to says what failed
        return ""
    if bounds is None:
        return "the store holds no predictions yet"
    return f"the store's predictions cover {bounds[0]:%Y-%m-%d %H:%M} to {bounds[1]:%Y-%m-%d %H:%M}"


def _paths(value: Any) -> list[tuple[str, str]]:
    """(name, path) pairs of a summary's ``reports`` entry (a mapping, or one path)."""
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items() if v]
    return [("report", str(value))] if value else []


def outcome_lines(flow_name: str, state: str, message: str, summary: dict[str, Any] | None) -> list[str]:
    """What ``driftline run`` prints at the end: the outcome in a few lines, from the run summary."""
    s = summary or {}
    if flow_name == "drift-monitor":
        level = s.get("level") or "-"
        lines = [f"{flow_name}: {state} — {level}"]
        if s.get("window_start"):
            lines.append(
                f"  window:   {s['window_start']} → {s.get('window_end')} ({s.get('n_rows', 0):,} rows), "
                f"champion {s.get('champion_version') or '-'}"
            )
        details = s.get("details") or {}
        rank = {"alert": 0, "warn": 1}
        for name in sorted(
            s.get("features") or [], key=lambda n: (rank.get((details.get(n) or {}).get("severity"), 2), n)
        ):
            d = details.get(name) or {}
            psi = d.get("psi")
            shown = (
                f"PSI {psi:.3f} (warn {d.get('warn', 0):.3f}, alert {d.get('alert', 0):.3f})" if psi is not None else ""
            )
            skew = " — explained by serving skew" if d.get("explained_by_skew") else ""
            lines.append(f"  {d.get('severity', 'flagged'):<8}  {name}: {shown}{skew}".rstrip())
        lines += [f"  reason:   {r}" for r in s.get("reasons") or []]
        if s.get("event"):
            lines.append(f"  event:    {s['event']}")
        elif level == "alert":
            lines.append("  event:    none (alert already sent in this episode; cool-down)")
        if s.get("skew_event"):
            lines.append(f"  event:    {s['skew_event']}")
        lines.append(f"  report:   {s.get('report') or '- (no report: ' + level + ')'}")
        if s.get("data_range"):
            lines.append(f"  data:     {s['data_range']}")
        if not s and message:
            lines.append(f"  {message}")
        return lines
    action = s.get("action") or ""
    lines = [f"{flow_name}: {state} — {action or message}"]
    if message and message != action:
        lines.append(f"  {message}")
    reg = s.get("registration") or {}
    if reg.get("version"):
        how = "promoted to champion" if reg.get("promoted") else "not champion"
        if reg.get("created") is False:
            how = "already registered for this week"
        prev = reg.get("previous_champion")
        lines.append(f"  version:  {reg['version']} ({how}{f'; champion before: {prev}' if prev else ''})")
    drift = s.get("drift") or {}
    if drift:
        lines.append(f"  decision: {drift.get('action', '-')} (trigger {drift.get('trigger') or '-'})")
    lines += [f"  reason:   {r}" for r in drift.get("reasons") or []]
    lines += [
        f"  blocked:  {r}" for r in (s.get("data_check") or {}).get("reasons") or [] if s.get("action") == "blocked"
    ]
    failed_gates = [g.get("name") for g in (s.get("gates") or {}).get("gates", []) if not g.get("passed")]
    if failed_gates:
        lines.append(f"  gates failed: {', '.join(str(g) for g in failed_gates)}")
    lines += [f"  {name}: {path}" for name, path in _paths(s.get("reports"))]
    return lines


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
