"""Shared CLI plumbing: global options, settings loading, one-line errors, JSON output."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from driftline.errors import DriftlineError
from driftline.secrets import mask_text


class State:
    """What the root callback learned; commands read settings from here."""

    config: Path | None = None


STATE = State()


def root_callback(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Settings file (default: $DRIFTLINE_CONFIG or ./driftline.yaml)."
    ),
) -> None:
    """Global options."""
    STATE.config = config


def settings(**overrides: Any):
    """Load the settings in force for this invocation."""
    from driftline.settings import load_settings

    return load_settings(STATE.config, **overrides)


def contract_for(path: Path | None, s: Any = None):
    """The contract named on the command line, else the one in settings (read with the YAML file limits)."""
    from driftline.contract import load_contract

    if path is None:
        s = s or settings()
        if s.contract is None:
            raise DriftlineError("no contract: pass --contract PATH or set 'contract:' in driftline.yaml")
        path = s.contract
    return load_contract(path)


def _strict(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers and strict parsers reject them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def emit_json(payload: Any) -> None:
    """Print machine-readable output on stdout (strict JSON: undefined numbers are null)."""
    typer.echo(json.dumps(_strict(payload), indent=2, default=str, allow_nan=False))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Click's exception classes: Typer ≥ 0.29 bundles its own copy of click."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(module, fromlist=["ClickException"]).ClickException)
        except ImportError:
            continue
    return tuple(found)


def run(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the app, turning DriftlineError into one line and its exit code."""
    try:
        result = app(args=argv, prog_name="driftline", standalone_mode=False)
    except DriftlineError as e:
        typer.echo(f"error: {mask_text(str(e))}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:  # click usage errors and anything unexpected: still one line
        if isinstance(e, _click_exceptions()):
            ctx = getattr(e, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {e.format_message()}{where}", err=True)
            return e.exit_code
        typer.echo(f"error: {type(e).__name__}: {mask_text(str(e))}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def hinted(call: Callable[[], Any], hints: dict[str, str]) -> Any:
    """Run ``call``; a refusal becomes one line with the hint its code has in ``hints`` (this CLI's terms)."""
    from driftline.errors import RefusedError

    try:
        return call()
    except RefusedError as e:
        hint = hints.get(e.code)
        raise DriftlineError(f"{e} ({hint})" if hint else str(e), exit_code=e.exit_code) from None
