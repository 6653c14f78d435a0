"""Validation commands: ``driftline validate`` (GX suite from the contract) and ``driftline skew``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from driftline.cli._common import contract_for, emit_json, settings

# = driftline.validation.suite.DEFAULT_TOLERANCE (tested): importing the suite here would load
# pandas and the contract for every command, ``driftline --help`` included.
DEFAULT_TOLERANCE = 0.5

STRICT_HELP = "Refuse (exit 2) a file with columns the contract does not name, instead of listing them."


def _load(path: Path, contract: Any, *, strict_columns: bool = False) -> tuple[Any, int, str | None]:
    """Read a batch with its timestamps as naive UTC datetimes (as the store keeps them).

    Every contract column must read as its type (:func:`driftline.validation.readable.check_readable`:
    one line and exit 2 naming the column and its first bad lines otherwise); columns the
    contract does not name are refused with ``strict_columns``, else named in the returned note.
    Timestamps are read as ingest reads them (:func:`driftline.values.parse_times`: text,
    datetimes, or Unix-time numbers in the unit their magnitude implies); a value that cannot be
    read becomes null, which the not-null expectation reports. Returns the frame, the number of
    CSV lines that could not be split into fields, and the note on unknown columns (or None).
    """
    from driftline.io import read_table
    from driftline.validation.readable import check_readable, note_unknown
    from driftline.values import parse_times

    table = read_table(path)
    frame = check_readable(table, contract)
    note = note_unknown(table.path, list(frame.columns), contract, strict=strict_columns)
    ts = contract.timestamp
    if ts in frame.columns:
        frame[ts] = parse_times(frame[ts], f"{table.path}: timestamp column {ts!r}")
    return frame, len(table.bad_lines), note


def _example_text(examples: list[Any]) -> str:
    return ", ".join(repr(x) for x in examples[:3])


def validate_cmd(
    file: Path = typer.Argument(..., help="Parquet or CSV batch (predictions-log columns)."),
    contract: Path | None = typer.Option(None, "--contract", help="Feature contract (default: from settings)."),
    profile: Path | None = typer.Option(
        None, "--profile", help="Reference profile JSON: adds quantile checks against it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    docs: Path | None = typer.Option(None, "--docs", help="Build GX Data Docs (HTML) into this folder."),
    min_rows: int = typer.Option(1, "--min-rows", min=0, help="Fail the batch below this many rows."),
    tolerance: float = typer.Option(
        DEFAULT_TOLERANCE, "--tolerance", min=0.0, help="Distribution bounds, in reference spreads."
    ),
    strict_columns: bool = typer.Option(False, "--strict-columns", help=STRICT_HELP),
) -> None:
    """Validate a batch with the GX suite the contract implies; exit 0 pass, 1 fail, 2 unusable input.

    Unusable input: a file that cannot be read, or a batch that cannot be used as a whole (a
    missing column, a column that cannot be read as its contract type, fewer rows than
    --min-rows); that is one line on stderr and exit 2. A batch whose rows break rules, or with
    broken CSV lines, fails with exit 1. Columns the contract does not name are listed on stderr.
    """
    from driftline.errors import InputError
    from driftline.validation import validate_frame

    c = contract_for(contract)
    ref = None
    if profile is not None:
        from driftline.drift.profile import Profile

        ref = Profile.load(profile)
        ref.check_contract(c)
    frame, bad_lines, note = _load(file, c, strict_columns=strict_columns)
    result = validate_frame(frame, c, ref, docs_dir=docs, min_rows=min_rows, tolerance=tolerance)
    if result.batch_error:
        from driftline.validation.readable import unknown_columns

        message = f"{file}: batch unusable: {result.batch_error}"
        unknown = unknown_columns(list(frame.columns), c)
        if result.batch_error.startswith("missing column") and unknown:
            message += f"; columns not in the contract: {', '.join(unknown[:10])} (renamed?)"
        raise InputError(message)
    if note:
        typer.echo(note, err=True)
    ok = result.success and bad_lines == 0
    payload = {"file": str(file), **result.to_dict(), "bad_lines": bad_lines}
    payload["success"] = ok
    if as_json:
        emit_json(payload)
        raise typer.Exit(0 if ok else 1)
    st = result.statistics
    typer.echo(
        f"{'PASS' if ok else 'FAIL'} {file}: {result.rows:,} rows, "
        f"{st['successful_expectations']}/{st['evaluated_expectations']} expectations met"
    )
    if bad_lines:
        typer.echo(f"  {bad_lines} CSV line(s) could not be parsed and were not validated")
    for e in result.failed:
        where = f"({e.column})" if e.column else ""
        if e.error:
            detail = e.error
        elif e.unexpected_count is not None:
            detail = f"{e.unexpected_count:,} unexpected" + (
                f", e.g. {_example_text(e.examples)}" if e.examples else ""
            )
        else:
            detail = f"observed {e.observed}"
        typer.echo(f"  x {e.name}{where} [{e.level}]: {detail}")
    if result.docs_index is not None:
        typer.echo(f"  data docs: {result.docs_page or result.docs_index}")
    raise typer.Exit(0 if ok else 1)


def skew_cmd(
    training: Path = typer.Option(..., "--training", help="Training-side features (Parquet or CSV)."),
    serving: Path = typer.Option(..., "--serving", help="Serving-side features, e.g. the predictions log."),
    contract: Path | None = typer.Option(None, "--contract", help="Feature contract (default: from settings)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the report as Markdown here."),
    apply: bool = typer.Option(
        False,
        "--apply",
        help="Write the suggested renames into the contract as an 'aliases:' block (review the diff; comments "
        "in the file are not kept).",
    ),
    strict_columns: bool = typer.Option(False, "--strict-columns", help=STRICT_HELP),
) -> None:
    """Find training-serving skew; exit 1 when it would block promotion (key feature, medium/high)."""
    from driftline.errors import InputError
    from driftline.validation import promotion_gate, skew_check

    c = contract_for(contract)
    contract_path = contract if contract is not None else settings().contract
    frames = {}
    for side, path in (("training", training), ("serving", serving)):
        frame, _, note = _load(path, c, strict_columns=strict_columns)
        if note:
            typer.echo(note, err=True)
        if frame.empty:
            raise InputError(f"{path}: no rows ({side} side)")
        frames[side] = frame
    report = skew_check(frames["training"], frames["serving"], c)
    if apply:
        mappings = {f.feature: f.mapping for f in report.findings if f.kind == "vocabulary" and f.mapping}
        if not mappings:
            typer.echo("no rename to apply: the skew report suggests no mapping")
            raise typer.Exit(0)
        updated = c.with_aliases(mappings)
        Path(contract_path).write_text(updated.to_yaml())
        for feature, mapping in mappings.items():
            shown = ", ".join(f"{k!r} -> {v!r}" for k, v in list(mapping.items())[:10])
            more = f" (+{len(mapping) - 10} more)" if len(mapping) > 10 else ""
            typer.echo(f"{contract_path}: {feature} aliases {shown}{more}")
        typer.echo("training, validation, drift, skew and serving now read these values as their targets")
        raise typer.Exit(0)
    gate = promotion_gate(None, report, c)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.to_markdown())
    if as_json:
        emit_json({**report.to_dict(), "blocks_promotion": gate.blocked, "reasons": gate.reasons})
    else:
        typer.echo(report.to_markdown().rstrip("\n"))
        if gate.blocked:
            typer.echo("\nblocks promotion: " + "; ".join(gate.reasons))
    raise typer.Exit(1 if gate.blocked else 0)


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``skew`` to the app."""
    app.command("validate")(validate_cmd)
    app.command("skew")(skew_cmd)
