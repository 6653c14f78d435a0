"""``driftline review``: the human review queue of hard production cases.

``export`` writes the highest-priority open cases (CSV or Parquet by suffix) with an empty
``label`` and ``reviewer`` column for a person to fill; ``import`` checks the filled file and
feeds the accepted labels to the feedback pool (bad rows are quarantined with a reason and the
counts reconcile; a file without the needed columns changes nothing and exits 2); ``status``
reports the pool's and the queue's sizes, reasons, label sources and ages.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import typer

from driftline.cli._common import contract_for, emit_json, settings

review_app = typer.Typer(help="Hard production cases for people to label; their labels feed the next training.")


def _feedback() -> Any:
    from driftline.feedback import FeedbackStore
    from driftline.store import Store

    s = settings()
    return FeedbackStore(Store.from_settings(s, contract_for(None, s))), s


@review_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="File to write (.csv or .parquet)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many cases, highest priority first."),
) -> None:
    """Write the open hard cases to label (they are marked exported, and stay until reviewed)."""
    from driftline.feedback import export_reviews
    from driftline.io import write_table

    fb, _ = _feedback()
    sheet = export_reviews(fb, limit)
    write_table(sheet, out)
    by = sheet["reason"].value_counts().to_dict() if len(sheet) else {}
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none open"
    typer.echo(f"wrote {len(sheet)} case(s) to {out} ({reasons}); fill 'label' (and 'reviewer'), then import it")


@review_app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="The reviewed file (.csv or .parquet)."),
    reviewer: str | None = typer.Option(
        None, "--reviewer", help="Who reviewed (default: the file's 'reviewer' column, else the OS user)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check reviewed labels and feed the accepted ones to the feedback pool."""
    from driftline.feedback import import_reviews
    from driftline.io import read_table

    fb, s = _feedback()
    table = read_table(path, text_columns=[fb.contract.request_id, "request_id", "label", "reviewer"])
    frame = table.frame
    if len(frame) > s.feedback.max_import_rows:
        from driftline.errors import InputError

        raise InputError(f"{path}: {len(frame)} rows, more than feedback.max_import_rows={s.feedback.max_import_rows}")
    if reviewer is None and "reviewer" not in frame.columns:
        reviewer = getpass.getuser()
    result = import_reviews(fb, frame, str(path), reviewer)
    if as_json:
        emit_json(result.to_dict())
        return
    bad = ", ".join(f"{k} {v}" for k, v in sorted(result.quarantined.items()))
    typer.echo(
        f"{path}: {result.read} row(s): {result.accepted} accepted into the feedback pool, "
        f"{result.unchanged} unchanged, {result.blank} without a label yet, "
        f"{sum(result.quarantined.values())} quarantined" + (f" ({bad})" if bad else "")
    )


@review_app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The feedback pool and the review queue: sizes, reasons, label sources, ages."""
    from driftline.feedback import status

    fb, _ = _feedback()
    st = status(fb)
    if as_json:
        emit_json(st)
        return
    p, q = st["pool"], st["queue"]
    age = p["age_weeks"]
    typer.echo(
        f"feedback pool: {p['rows']} row(s) {p['by_reason']} from {p['by_source']}"
        + (f", {age['min']:.1f}-{age['max']:.1f} weeks old" if age else "")
    )
    typer.echo(f"review queue: {q['rows']} row(s) {q['by_status']}; open by reason {q['open_by_reason']}")


def register(app: typer.Typer) -> None:
    """Add ``review`` to the app."""
    app.add_typer(review_app, name="review")
