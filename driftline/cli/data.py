"""Data commands: simulate traffic, ingest files, draft a contract, and the demo."""

from __future__ import annotations

from pathlib import Path

import typer

from driftline.cli._common import contract_for, emit_json, settings


def simulate_cmd(
    weeks: int = typer.Option(13, min=1, help="Weeks of traffic."),
    users: int = typer.Option(5000, min=1, help="Users in the population."),
    scenario: str = typer.Option(
        "stable",
        help="stable, covariate_shift, concept_drift, country_names, long_tail; combine with commas.",
    ),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same bytes."),
    out: Path = typer.Option(Path("sim"), help="Folder for traffic.parquet, outcomes.parquet, contract.yaml."),
    shift_week: int | None = typer.Option(None, help="Week the scenario starts (default: half way)."),
    start: str = typer.Option("2026-01-05", help="First day (a Monday)."),
    to_store: bool = typer.Option(
        False, "--to-store", help="Also write the requests and their outcomes (labels) into the configured store."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Simulate churn traffic and outcomes with a scenario (for demos, tests and benchmarks)."""
    from driftline.simulate import parse_scenarios, simulate, write_simulation

    sim = simulate(
        weeks=weeks, users=users, scenarios=parse_scenarios(scenario), seed=seed, start=start, shift_week=shift_week
    )
    files = write_simulation(sim, out)
    summary: dict = {
        "rows": len(sim.traffic),
        "outcomes": len(sim.outcomes),
        "files": {k: str(v) for k, v in files.items()},
        "meta": sim.meta,
    }
    if to_store:
        from driftline.store import Store

        s = settings()
        s.ensure_home()
        store = Store.from_settings(s, sim.contract).create()
        with store.transaction() as conn:
            p = store.append_predictions(sim.traffic, conn=conn)
            o = store.append_outcomes(sim.outcomes, conn=conn)
        summary["store"] = {"url": store._safe_url(), "predictions_stored": p.stored, "outcomes_stored": o.stored}
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"simulated {summary['rows']:,} requests and {summary['outcomes']:,} outcomes -> {out}/")
    for k, v in summary["files"].items():
        typer.echo(f"  {k:9s} {v}")
    if to_store:
        st = summary["store"]
        typer.echo(
            f"  stored {st['predictions_stored']:,} predictions and {st['outcomes_stored']:,} outcomes in {st['url']}"
        )


def ingest_cmd(
    files: list[Path] = typer.Argument(..., help="Parquet or CSV files of predictions (or outcomes)."),
    contract: Path | None = typer.Option(None, "--contract", help="Feature contract (default: from settings)."),
    kind: str = typer.Option(
        "auto", help="predictions, outcomes or auto (outcomes = label + observed_time, no features)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check rows against the contract; store good rows, quarantine bad ones with a reason."""
    from driftline.ingest import ingest_files
    from driftline.store import Store

    s = settings()
    c = contract_for(contract, s)
    s.ensure_home()
    store = Store.from_settings(s, c)
    report = ingest_files([str(f) for f in files], c, store, kind=kind)
    if as_json:
        emit_json(report.to_dict())
        return
    d = report.to_dict()
    typer.echo(
        f"{d['rows_in']:,} rows in: {d['stored']:,} stored, {d['quarantined']:,} quarantined, "
        f"{d['duplicates_skipped']:,} duplicates skipped ({store._safe_url()})"
    )
    if d["by_reason"]:
        several = sum(d["by_reason"].values()) > d["quarantined"]
        typer.echo(
            "  rows per fault (a row with several faults counts under each; quarantined once, by its first):"
            if several
            else "  rows per fault:"
        )
    for reason, count in d["by_reason"].items():
        typer.echo(f"    {count:>8,}  {reason}")
    for feat, count in d["unseen_categories"].items():
        typer.echo(f"  unseen values {count:>6,}  {feat} (stored; open vocabulary)")
    for feat, count in d["outside_soft_range"].items():
        typer.echo(f"  outside range {count:>6,}  {feat} (stored; the range is soft: review it, then drop range_soft)")
    note = report.target_note()
    if note:
        typer.echo(f"  {note}")


def infer_cmd(
    data_file: Path = typer.Argument(..., help="Parquet or CSV file with your data."),
    target: str = typer.Option(..., "--target", help="Label column."),
    timestamp: str = typer.Option(..., "--timestamp", help="Event-time column."),
    entity_id: str = typer.Option(..., "--id", help="Entity id column (user, account, device...)."),
    request_id: str | None = typer.Option(
        None,
        "--request-id",
        help="Unique row id column (default: request_id, else derived from --id, see the YAML comment).",
    ),
    positive: str | None = typer.Option(
        None, "--positive", help="Positive label value (default: 1, true, or yes/y/t/positive when present)."
    ),
    vocab_cap: int = typer.Option(50, help="Largest vocabulary written out per categorical feature."),
    name: str = typer.Option("model", help="Contract name."),
) -> None:
    """Draft a feature contract from a data file (print YAML; review it before use)."""
    from driftline.infer import contract_yaml, infer_with_notes
    from driftline.io import read_table

    frame = read_table(data_file).frame
    pos: str | int | None = positive
    if positive is not None and positive.lstrip("-").isdigit():
        pos = int(positive)
    c, notes = infer_with_notes(
        frame,
        target=target,
        timestamp=timestamp,
        entity_id=entity_id,
        request_id=request_id,
        positive=pos,
        vocab_cap=vocab_cap,
        name=name,
    )
    typer.echo(contract_yaml(c, notes), nl=False)


def register(app: typer.Typer) -> None:
    """Add the data commands to the app."""
    app.command("simulate")(simulate_cmd)
    app.command("ingest")(ingest_cmd)
    contract_app = typer.Typer(help="Feature contract tools.", no_args_is_help=True)
    contract_app.command("infer")(infer_cmd)
    app.add_typer(contract_app, name="contract")
