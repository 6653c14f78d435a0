"""``driftline models``: browse registered versions, promote, roll back, read the alias history.

Rollback and promote only move an MLflow alias; serving follows ``models:/NAME@champion``.
These commands do not import MLflow: against an ``http(s)`` tracking server they talk REST, on
the embedded SQLite registry they use ``sqlite3`` when its schema is one driftline knows (see
:mod:`driftline.registry.sqlite`; otherwise ``MlflowClient``), so each takes under half a
second. Every move is recorded with who made it (``$USER``, else ``cli``) and why.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import typer

from driftline.cli import _common

if TYPE_CHECKING:  # pragma: no cover - typing only
    from driftline.registry import AliasMove, ModelRegistry

# Fail fast when the tracking server is down instead of MLflow's minutes of retries.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # MLflow parses this as an int
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def _registry() -> tuple[ModelRegistry, Any]:
    from driftline.registry import ModelRegistry

    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    s = _common.settings()
    return ModelRegistry.from_settings(s), s


def _console() -> Any:
    """A rich console; when output is piped, wide enough that tables do not wrap."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


# What this face calls the options a refusal's hint points to.
CLI_HINTS = {
    "no_previous": "use --to N to name the version",
    "not_promotable": "use --force to move it anyway (recorded as forced)",
}


def _actor(given: str | None = None) -> str:
    """Who is moving an alias: ``--actor``, else the OS user."""
    if given and given.strip():
        return given.strip()
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "cli"


def _settings_found() -> bool:
    """Whether this invocation names its model: a settings file exists, or ``DRIFTLINE_MODEL_NAME``."""
    from driftline.settings import config_path

    return config_path(_common.STATE.config).exists() or bool(os.environ.get("DRIFTLINE_MODEL_NAME"))


def _nothing_found(what: str, reg: ModelRegistry) -> None:
    """Refuse an empty answer given without settings; the caller reports an empty one otherwise.

    With a settings file (or ``DRIFTLINE_MODEL_NAME``) an empty registry is a fresh project. Without
    either, the model name and the registry are the defaults, which almost always means a command
    run from the wrong folder: one line naming the model and where it looked, exit 2.
    """
    from driftline.errors import DriftlineError
    from driftline.settings import config_path

    if not _settings_found():
        raise DriftlineError(
            f"{what} of model '{reg.model_name}' (the default name) at {reg.where}: no settings file "
            f"{config_path(_common.STATE.config).resolve()}; pass --config FILE or set DRIFTLINE_CONFIG"
        )


def _hinted(call: Any) -> Any:
    """Run a registry move; a refusal becomes one line with its hint (see ``_common.hinted``)."""
    return _common.hinted(call, CLI_HINTS)


def _fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")


def _say_move(move: AliasMove) -> None:
    if not move.changed:
        typer.echo(f"{move.alias} already points at version {move.to_version}; nothing changed")
        return
    frm = "unset" if move.from_version is None else f"version {move.from_version}"
    forced = " (forced)" if move.forced else ""
    typer.echo(
        f"{move.alias}: {frm} -> version {move.to_version} ({move.kind}{forced}, recorded as history #{move.seq})"
    )


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group."""
    models = typer.Typer(
        help="Registered model versions: list, show, promote, roll back, alias history.",
        no_args_is_help=True,
    )
    app.add_typer(models, name="models")

    @models.command("list")
    def list_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Versions with aliases, trigger, creation time, primary test metric and gate status."""
        reg, s = _registry()
        metric = s.gates.primary_metric
        versions = reg.list_versions()
        if not versions:
            _nothing_found("no versions", reg)
            if not as_json:
                typer.echo(f"no versions of model '{reg.model_name}' at {reg.where} yet")
                return
        # Aliases moved in the MLflow UI (or by any other client) skipped the gates and the history: say so.
        for move in reg.outside_moves({a: v.version for v in versions for a in v.aliases}):
            typer.echo(f"warning: {move.text}", err=True)
        if as_json:
            _common.emit_json(
                [{**v.to_dict(), "primary_metric": metric, "primary_metric_value": v.metric(metric)} for v in versions]
            )
            return
        from rich.table import Table

        table = Table(title=f"{reg.model_name} @ {reg.where}")
        for col in ("version", "aliases", "trigger", "created (UTC)", f"test {metric}", "gates"):
            table.add_column(col, overflow="fold")
        for v in versions:
            table.add_row(
                v.version,
                ", ".join(v.aliases) or "-",
                v.trigger or "-",
                _when(v.created_at),
                _fmt_metric(v.metric(metric)),
                v.gate_status,
            )
        _console().print(table)

    @models.command("show")
    def show_cmd(
        version: str = typer.Argument(..., help="Version number."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Every tag, metric and artifact of one version."""
        reg, _s = _registry()
        info = reg.get(version)
        artifacts = reg.list_artifacts(info.version)
        if as_json:
            _common.emit_json({**info.to_dict(), "artifacts": [{"path": p, "size": n} for p, n in artifacts]})
            return
        from rich.table import Table

        console = _console()
        console.print(f"[bold]{reg.model_name} version {info.version}[/bold]")
        console.print(f"aliases: {', '.join(info.aliases) or '-'}")
        console.print(f"created: {_when(info.created_at)}   run: {info.run_id or '-'}   gates: {info.gate_status}")
        console.print(f"source:  {info.source}")
        for title, rows in (
            ("tags", sorted(info.tags.items())),
            ("metrics", sorted((k, f"{v:.6g}") for k, v in info.metrics.items())),
            ("artifacts", [(p, "-" if n is None else f"{n} B") for p, n in artifacts]),
        ):
            table = Table(title=title, show_header=False)
            table.add_column("key", style="bold")
            table.add_column("value", overflow="fold")
            for k, v in rows:
                table.add_row(k, v)
            if not rows:
                table.add_row("-", "-")
            console.print(table)

    @models.command("promote")
    def promote_cmd(
        version: str = typer.Argument(..., help="Version number to promote."),
        alias: str = typer.Option("champion", "--alias", help="Alias to move (champion or challenger)."),
        force: bool = typer.Option(
            False, "--force", help="Promote a version that failed its gates or that driftline did not register."
        ),
        reason: str = typer.Option(..., "--reason", help="Why; kept in the alias history."),
        actor: str | None = typer.Option(None, "--actor", help="Who, for the history (default: the OS user)."),
    ) -> None:
        """Point an alias at a version; refuses versions that failed their gates or are not driftline's."""
        reg, _s = _registry()
        _say_move(_hinted(lambda: reg.promote(version, alias, reason=reason, actor=_actor(actor), force=force)))

    @models.command("rollback")
    def rollback_cmd(
        to: str | None = typer.Option(None, "--to", help="Version to make champion again."),
        previous: bool = typer.Option(False, "--previous", help="Go back to the previous champion."),
        reason: str = typer.Option(..., "--reason", help="Why; kept in the alias history."),
        force: bool = typer.Option(
            False, "--force", help="Roll back to a version that failed its gates or that driftline did not register."
        ),
        actor: str | None = typer.Option(None, "--actor", help="Who, for the history (default: the OS user)."),
    ) -> None:
        """Move champion back to an older version: an alias move, no retraining, no redeploy."""
        from driftline.errors import DriftlineError

        if (to is None) == (not previous):
            raise DriftlineError("rollback needs exactly one of --to N or --previous")
        reg, _s = _registry()
        who = _actor(actor)
        _say_move(
            _hinted(lambda: reg.rollback(to_version=to, previous=previous, reason=reason, actor=who, force=force))
        )

    @models.command("history")
    def history_cmd(
        alias: str | None = typer.Option(None, "--alias", help="Only this alias."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Every recorded alias move: when, who, alias, from, to, why."""
        reg, _s = _registry()
        moves = reg.history(alias)
        if not moves:
            _nothing_found("no alias moves recorded", reg)
        if as_json:
            _common.emit_json([m.to_dict() for m in moves])
            return
        if not moves:
            typer.echo(f"no alias moves recorded for model '{reg.model_name}'")
            return
        from rich.table import Table

        table = Table(title=f"alias history of {reg.model_name}")
        for col in ("#", "when (UTC)", "alias", "move", "kind"):
            table.add_column(col, no_wrap=True)
        for col in ("actor", "reason", "state"):
            table.add_column(col, overflow="fold")
        for m in moves:
            state = m.state + (" (forced)" if m.forced else "")
            if m.state == "intent":
                state += ": in flight or interrupted; the next registry call settles it"
            if m.note:
                state += f" — {m.note}"
            table.add_row(
                str(m.seq),
                m.when.strftime("%Y-%m-%dT%H:%M:%S"),
                m.alias,
                f"{m.from_version or '-'} -> {m.to_version or '-'}",
                m.kind,
                m.actor,
                m.reason,
                state,
            )
        _console().print(table)
