"""``driftline replay``: replay the store's history under retraining policies and compare them.

The real registry is never opened and the real store is only read; every policy runs the weekly
pipeline against its own scratch registry (see :mod:`driftline.replay`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from driftline.cli._common import contract_for, emit_json, settings
from driftline.errors import DriftlineError, InputError

POLICY_HELP = (
    "never | weekly | drift[:key=value,...] (drift settings, e.g. drift:psi_warn=0.15,metric_drop_retrain=0.05); "
    "repeat for several (default: never, weekly, drift)."
)


def _open_store(s: Any, contract: Any) -> Any:
    """The configured store, for reading only: a SQLite file that does not exist is an error (not created)."""
    from driftline.store import Store

    url = str(s.store_url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            raise DriftlineError(f"no store at {path}: ingest traffic and outcomes first")
    store = Store(url, contract)
    try:
        bounds = store.time_bounds()
    except DriftlineError:
        raise
    except Exception as e:  # no predictions table, unreachable server
        raise DriftlineError(f"cannot read the store's predictions ({type(e).__name__}: {e})") from None
    if bounds is None:
        raise DriftlineError("the store has no predictions: ingest traffic and outcomes first")
    return store


def replay_cmd(
    start: str = typer.Option(..., "--from", help="First week to replay (its run is the bootstrap), YYYY-MM-DD."),
    end: str = typer.Option(..., "--to", help="Last week to replay, YYYY-MM-DD."),
    policy: list[str] = typer.Option([], "--policy", "-p", help=POLICY_HELP),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: training.seed in driftline.yaml)."),
    resamples: int = typer.Option(200, "--resamples", min=1, help="Bootstrap resamples of each weekly interval."),
    min_recovery: float = typer.Option(
        0.9, "--min-recovery", min=0.0, max=1.0, help="Share of the loss a recommended policy must recover."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    html_path: Path | None = typer.Option(None, "--html", help="Write the report as a self-contained HTML page."),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Keep the scratch registries here (default: a temporary folder, removed)."
    ),
) -> None:
    """Replay the store's history under retraining policies: retrains, metric, recovery, recommendation."""
    from driftline import replay as rp
    from driftline.splits import to_utc_naive

    policies = rp.parse_policies(policy)
    lo, hi = to_utc_naive(start), to_utc_naive(end)
    s = settings()
    contract = contract_for(None, s)
    for p in policies:
        p.settings_for(s)
    rp.run_times(lo, hi, s.windows.week_start)  # a range without two weekly runs fails before any work
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        raise InputError(f"--workdir {workdir}: not empty; name a new folder")
    store = _open_store(s, contract)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from rich.console import Console

    console = Console(stderr=True)
    with console.status("replaying…") as status:

        def progress(line: str) -> None:
            status.console.print(f"  {line}", highlight=False)

        report = rp.replay(
            s,
            contract,
            store,
            lo,
            hi,
            policies,
            seed=seed,
            resamples=resamples,
            min_recovery=min_recovery,
            workdir=workdir,
            progress=None if as_json and not sys.stderr.isatty() else progress,
        )
    store.dispose()
    if html_path is not None:
        try:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            html_path.write_text(rp.render_html(report), encoding="utf-8")
        except OSError as e:
            raise DriftlineError(f"--html {html_path}: cannot write ({e.strerror or e})") from None
    if as_json:
        emit_json(report)
    else:
        typer.echo(rp.render_text(report))
        if html_path is not None:
            typer.echo(f"\nwrote {html_path}")


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the app."""
    app.command("replay")(replay_cmd)
