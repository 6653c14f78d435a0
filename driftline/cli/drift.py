"""``driftline drift`` and ``driftline profile``: drift of a window against a reference or stored profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from driftline.cli import _common

_RANK = {"none": 0, "investigate": 1, "retrain": 2}
STRICT_HELP = "Refuse (exit 2) a file with columns the contract does not name, instead of listing them."
# As validate's failed check: 1 is an answer the caller asked to fail on; 3 means transient (retry).
DECISION_EXIT = 1


def _read(
    path: Path,
    what: str,
    contract: Any,
    *,
    kinds: dict[str, str] | None = None,
    strict_columns: bool = False,
    also: tuple[str | None, ...] = (),
    features: list[str] | None = None,
) -> Any:
    """Read a whole file; its columns must read as their types (one line and exit 2 otherwise).

    Types come from ``contract``, else from ``kinds`` (a profile's features). Columns the
    contract does not name are listed on stderr (refused with ``strict_columns``), and a missing
    feature's message names them. Numeric features held as text come back as float64.
    """
    from driftline.io import read_table
    from driftline.validation.readable import check_readable, missing_message, note_unknown

    table = read_table(path)
    if table.bad_lines:
        typer.echo(
            f"warning: {path}: skipped {len(table.bad_lines)} malformed line(s) "
            f"(first: line {table.bad_lines[0].line})",
            err=True,
        )
    if len(table.frame) == 0:
        raise _input_error(f"{path}: {what} file has no rows")
    columns = [str(c) for c in table.frame.columns]
    extra = tuple(a for a in also if a)
    wanted = features or (list(contract.features) if contract is not None else list(kinds or {}))
    missing = [f for f in wanted if f not in columns]
    if missing:
        if contract is not None:
            raise _input_error(missing_message(path, missing, columns, contract))
        raise _input_error(f"{path}: missing feature column(s): {', '.join(missing)}")
    frame = check_readable(table, contract if contract is not None else (kinds or {}))
    if contract is not None:
        note = note_unknown(path, columns, contract, strict=strict_columns, also=extra)
        if note:
            typer.echo(note, err=True)
    return frame


def _fit(
    path: Path,
    con: Any,
    s: Any,
    score_column: str | None,
    label_column: str | None,
    threshold: float | None,
    strict_columns: bool = False,
) -> Any:
    """Fit a profile on a reference file; the contract's target is the label when the file has it."""
    from driftline.drift import fit_profile

    ref = _read(path, "reference", con, strict_columns=strict_columns, also=(score_column, label_column))
    label = label_column
    if label is None and con.target.name in ref.columns:
        label = con.target.name
    thr = threshold if threshold is not None else s.training.threshold
    return fit_profile(ref, con, s.drift, score_column, label, threshold=thr, source=str(path))


def _input_error(message: str) -> Exception:
    from driftline.errors import InputError

    return InputError(message)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _print_table(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    colors = {"alert": "red", "warn": "yellow", "stable": "green", "insufficient_data": "grey50"}
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # piped output: keep feature names whole
    table = Table(
        title=f"drift · {report.contract_name} · reference {report.n_reference:,} rows · "
        f"current {report.n_current:,} rows"
    )
    for col in ("feature", "PSI", "KL", "JS", "warn/alert", "p", "missing", "unseen/out of range", "severity"):
        table.add_column(col, justify="left" if col == "feature" else "right", no_wrap=col == "feature")
    rows = report.by_severity()
    if report.score is not None:
        rows = [*rows, report.score]
    for f in rows:
        name = f.name + (" (key)" if f.key else "") + (" (score)" if f is report.score else "")
        unseen = f.unseen_share if f.unseen_share is not None else f.out_of_range_share
        table.add_row(
            name,
            f"{f.psi:.4f}",
            f"{f.kl:.4f}",
            f"{f.js:.4f}",
            f"{f.band.warn:.3f}/{f.band.alert:.3f}",
            "–" if f.p_value is None else f"{f.p_value:.3g}",
            "–" if f.missing_share is None else f"{f.missing_share:.1%}",
            "–" if unseen is None else f"{unseen:.1%}",
            f"[{colors.get(f.severity, 'white')}]{f.severity}[/]",
        )
    console.print(table)
    d = report.decision
    console.print(f"decision: [bold]{d.action}[/]")
    for r in d.reasons:
        console.print(f"  - {r}", markup=False, highlight=False)


def drift_command(
    current: Path = typer.Option(..., "--current", help="Current window: a Parquet or CSV file."),
    reference: Path | None = typer.Option(None, "--reference", help="Reference data (Parquet or CSV) to fit on."),
    profile: Path | None = typer.Option(
        None, "--profile", help="A saved reference profile (from 'driftline profile')."
    ),
    contract: Path | None = typer.Option(None, "--contract", help="Feature contract YAML (default: from settings)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report here."),
    feature: list[str] | None = typer.Option(None, "--feature", "-f", help="Only these features (repeatable)."),
    score_column: str | None = typer.Option(None, "--score-column", help="Model score column in the reference."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Label column (default: the contract's target, when present)."
    ),
    threshold: float | None = typer.Option(None, "--threshold", help="Deployed decision threshold on the score."),
    batch_size: int = typer.Option(262_144, "--batch-size", min=1, help="Rows per chunk when streaming Parquet."),
    fail_on: str = typer.Option(
        "none",
        "--fail-on",
        help=(
            f"Exit {DECISION_EXIT} when the policy decides this or worse: 'investigate' (investigate or retrain) "
            f"or 'retrain'. The default, 'none', never exits {DECISION_EXIT} for a decision."
        ),
    ),
    strict_columns: bool = typer.Option(False, "--strict-columns", help=STRICT_HELP),
) -> None:
    """Measure drift of a window (PSI, KL, JS per feature) and apply the trigger policy."""
    from driftline.drift import Profile, compare, compare_parquet, render_html
    from driftline.errors import InputError

    if (reference is None) == (profile is None):
        raise InputError("give exactly one of --reference FILE or --profile PATH")
    if fail_on not in _RANK:
        raise InputError(f"--fail-on must be one of none, investigate, retrain (got {fail_on!r})")
    s = _common.settings()
    if reference is not None:
        con = _common.contract_for(contract, s)
        prof = _fit(reference, con, s, score_column, label_column, threshold, strict_columns)
    else:
        assert profile is not None
        prof = Profile.load(profile)
        con = _common.contract_for(contract, s) if (contract is not None or s.contract is not None) else None
        if con is not None:
            prof.check_contract(con)
    features = list(feature) if feature else None
    kinds = {name: fp.kind for name, fp in prof.features.items()}
    if features and any(f not in kinds for f in features):
        features_known = None  # the comparison names the unknown feature(s)
    else:
        features_known = features
    extra = tuple(
        x.column for x in (prof.score, prof.label, prof.segments) if x is not None and getattr(x, "column", None)
    )
    if _is_parquet(current):
        from driftline.io import check_input_file
        from driftline.validation.readable import check_parquet_readable, missing_message, note_unknown

        if not current.exists():
            raise InputError(f"{current}: file not found")
        check_input_file(current)
        wanted = features_known or list(kinds)
        columns = check_parquet_readable(current, con if con is not None else kinds, [*wanted, *extra], batch_size)
        missing = [f for f in wanted if f not in columns]
        if missing and con is not None:
            raise InputError(missing_message(current, missing, columns, con))
        if missing:
            raise InputError(f"{current}: missing feature column(s): {', '.join(missing)}")
        if con is not None:
            note = note_unknown(current, columns, con, strict=strict_columns, also=extra)
            if note:
                typer.echo(note, err=True)
        report = compare_parquet(prof, current, s.drift, batch_size, con, features=features)
    else:
        frame = _read(
            current, "current", con, kinds=kinds, strict_columns=strict_columns, also=extra, features=features_known
        )
        report = compare(prof, frame, s.drift, con, features=features, source=str(current))
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report))
        typer.echo(f"wrote HTML report to {html}", err=True)
    if json_out:
        _common.emit_json(report.to_dict())
    else:
        _print_table(report)
    if fail_on != "none" and _RANK[report.decision.action] >= _RANK[fail_on]:
        raise typer.Exit(DECISION_EXIT)


def profile_command(
    file: Path = typer.Argument(..., help="Reference data: a Parquet or CSV file."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the profile JSON."),
    contract: Path | None = typer.Option(None, "--contract", help="Feature contract YAML (default: from settings)."),
    score_column: str | None = typer.Option(None, "--score-column", help="Model score column to profile."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Label column (default: the contract's target, when present)."
    ),
    threshold: float | None = typer.Option(None, "--threshold", help="Deployed decision threshold on the score."),
    json_out: bool = typer.Option(False, "--json", help="Print a summary as JSON."),
    strict_columns: bool = typer.Option(False, "--strict-columns", help=STRICT_HELP),
) -> None:
    """Fit a reference profile (bins, vocabularies, counts) and save it as versioned JSON."""

    s = _common.settings()
    con = _common.contract_for(contract, s)
    prof = _fit(file, con, s, score_column, label_column, threshold, strict_columns)
    prof.save(out)
    summary = {
        "profile": str(out),
        "contract": prof.contract_name,
        "fingerprint": prof.contract_fingerprint,
        "rows": prof.n_rows,
        "features": len(prof.features),
        "score": prof.score.column if prof.score else None,
        "label": prof.label.column if prof.label else None,
        "segments": len(prof.segments.values) if prof.segments else 0,
    }
    if json_out:
        _common.emit_json(summary)
    else:
        typer.echo(
            f"profiled {prof.n_rows:,} rows, {len(prof.features)} features of contract {prof.contract_name!r} -> {out}"
        )


def register(app: typer.Typer) -> None:
    """Add ``drift`` and ``profile`` to the app."""
    app.command("drift")(drift_command)
    app.command("profile")(profile_command)
