"""``driftline rollout``: start, inspect, pause, resume and abort a challenger's progressive rollout.

``start`` only starts (challenger alias set, shadow begins); the ``rollout`` flow or deployment
takes one decision per interval. ``step`` takes one decision here, in-process, without Prefect —
for a machine without a Prefect server, or to decide now. Every write is compare-and-set on the
rollout row, so a ``pause`` during a flow's decision is never lost; refusals are one line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from driftline.cli import _common

if TYPE_CHECKING:  # pragma: no cover - typing only
    from driftline.registry.rollouts import Rollout, RolloutRecord
    from driftline.rollout import RolloutRunner

# What this face says next to a refusal, by its code.
CLI_HINTS = {
    "rollout_active": "driftline rollout abort --reason ... stops it",
    "no_rollout": "start one: driftline rollout start VERSION",
    "moved": "a decision ran meanwhile; see driftline rollout status",
}
JSON = typer.Option(False, "--json", help="Machine-readable output.")
ACTOR = typer.Option(None, "--actor", help="Who, for the alias history (default: the OS user).")


def _runner(*, decide: bool = False) -> RolloutRunner:
    """The rollout runner of the settings' model; with ``decide``, its contract and store are opened.

    Only a decision reads traffic, so the other commands work without a contract in the settings.
    """
    from driftline.cli.models import _registry
    from driftline.rollout import RolloutRunner
    from driftline.store import Store

    reg, s = _registry()
    if not decide:
        return RolloutRunner(reg, None, None, s)
    contract = _common.contract_for(None, s)
    return RolloutRunner(reg, Store.from_settings(s, contract).create(), contract, s)


def _hinted(call: Any) -> Any:
    """Run a rollout call; a refusal becomes one line with its hint (see ``_common.hinted``)."""
    return _common.hinted(call, CLI_HINTS)


def _actor(given: str | None) -> str:
    from driftline.cli.models import _actor as who

    return who(given)


def _say(r: Rollout) -> str:
    paused = " (paused)" if r.paused else ""
    from driftline.rollout_text import one_line

    return one_line(r) + paused


def _record(d: RolloutRecord) -> dict[str, Any]:
    return {
        "rollout_id": d.rollout_id,
        "decided": datetime.fromtimestamp(d.decided_us / 1e6, UTC).isoformat(timespec="seconds"),
        "phase": d.phase,
        "step": d.step,
        "share": d.share,
        "action": d.action,
        "reasons": d.reasons,
        "evidence": d.evidence,
    }


def _console() -> Any:
    from driftline.cli.models import _console as console

    return console()


def register(app: typer.Typer) -> None:
    """Add the ``rollout`` command group."""
    ro = typer.Typer(
        help="Progressive rollout of the challenger: shadow, canary steps, promote or revert.",
        no_args_is_help=True,
    )
    app.add_typer(ro, name="rollout")

    @ro.command("status")
    def status_cmd(
        last: int = typer.Option(10, "--last", min=0, help="How many of the rollout's last decisions to show."),
        as_json: bool = JSON,
    ) -> None:
        """The current (or last) rollout and its last decisions."""
        run = _runner()
        r = run.status()
        kept = [] if r is None else run.rollouts.decisions(run.model, r.rollout_id)
        shown = kept[-last:] if last else []
        if as_json:
            _common.emit_json(
                {
                    "model": run.model,
                    "rollout": None if r is None else r.to_dict(),
                    "active": bool(r is not None and r.active),
                    "decisions": [_record(d) for d in shown],
                    "decisions_total": len(kept),
                }
            )
            return
        if r is None:
            typer.echo(f"no rollout of model '{run.model}' yet (start one: driftline rollout start VERSION)")
            return
        typer.echo(f"{run.model}: {_say(r)}; last action {r.last_action or '-'}")
        for why in r.reasons:
            typer.echo(f"  - {why.get('code')}: {why.get('text')}")
        if not shown:
            return
        from rich.table import Table

        table = Table(title=f"last {len(shown)} of {len(kept)} decisions")
        for col in ("when (UTC)", "phase", "share", "action", "requests", "labelled"):
            table.add_column(col, no_wrap=True)
        table.add_column("reasons", overflow="fold")
        for d in shown:
            ev = d.evidence or {}
            table.add_row(
                datetime.fromtimestamp(d.decided_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                d.phase,
                f"{d.share:g}%",
                d.action,
                ", ".join(f"{k}={v}" for k, v in (ev.get("requests") or {}).items()) or "-",
                ", ".join(f"{k}={v}" for k, v in (ev.get("labelled") or {}).items()) or "-",
                "; ".join(f"{w.get('code')}: {w.get('text')}" for w in d.reasons) or "-",
            )
        _console().print(table)

    @ro.command("start")
    def start_cmd(
        version: str = typer.Argument(..., help="Registered version to roll out (becomes challenger)."),
        reason: str = typer.Option("rollout started by hand", "--reason", help="Why; kept in the alias history."),
        actor: str | None = ACTOR,
        as_json: bool = JSON,
    ) -> None:
        """Point challenger at VERSION and begin in shadow; the rollout flow takes the decisions."""
        run = _runner()
        r = _hinted(lambda: run.start(version, actor=_actor(actor), reason=reason))
        if as_json:
            _common.emit_json(r.to_dict())
            return
        typer.echo(f"started {_say(r)}")
        typer.echo(
            "decisions: the rollout deployment (prefect deployment run rollout/rollout), or driftline rollout step"
        )

    @ro.command("step")
    def step_cmd(actor: str | None = ACTOR, as_json: bool = JSON) -> None:
        """Take one decision now, in this process (no Prefect needed), and apply it."""
        run = _runner(decide=True)
        d = _hinted(lambda: run.step(actor=_actor(actor)))
        if as_json:
            _common.emit_json(d.to_dict())
            return
        where = _say(d.rollout) if d.rollout is not None else "no rollout"
        typer.echo(f"{d.action}: {where}")
        for why in d.reasons:
            typer.echo(f"  - {why.code}: {why.text}")

    def _pause(paused: bool, as_json: bool) -> None:
        run = _runner()
        r = _hinted(lambda: run.pause(paused))
        if as_json:
            _common.emit_json(r.to_dict())
            return
        typer.echo(("paused " if paused else "resumed ") + _say(r))

    @ro.command("pause")
    def pause_cmd(as_json: bool = JSON) -> None:
        """Hold every decision at the current phase and share until resumed."""
        _pause(True, as_json)

    @ro.command("resume")
    def resume_cmd(as_json: bool = JSON) -> None:
        """Let decisions move the rollout again."""
        _pause(False, as_json)

    @ro.command("abort")
    def abort_cmd(
        reason: str = typer.Option(
            "aborted by hand", "--reason", help="Why; kept with the rollout and the alias history."
        ),
        actor: str | None = ACTOR,
        as_json: bool = JSON,
    ) -> None:
        """Stop the rollout: canary share to 0, challenger alias cleared; the champion keeps serving."""
        run = _runner()
        r = _hinted(lambda: run.abort(actor=_actor(actor), reason=reason))
        if as_json:
            _common.emit_json(r.to_dict())
            return
        typer.echo(f"aborted {_say(r)}; challenger alias cleared")
