"""``driftline quickstart DATA --target COL --timestamp COL --id COL``: from a data file to a first weekly run.

One command for bringing one's own data, in the steps the README lists one by one:

1. **Contract.** Drafted from the file (:mod:`driftline.infer`), written with its reasons as
   comments to ``<workdir>/contract.yaml``.
2. **Settings.** ``<workdir>/driftline.yaml``: state under ``<workdir>/.driftline``, and windows
   fitted to the file's span — the test week is the last (calendar) week holding data, training
   takes up to 8 whole weeks before it, the backtest up to 3 folds.
3. **Ingest.** The rows go into the store as predictions (every row checked; bad rows
   quarantined with a reason), the labels as outcomes. A label counts as observed at the file's
   ``observed_time`` column when it has one, else ``label_delay_days`` after its event.
4. **Profile.** A reference profile of the file, ``<workdir>/.driftline/reports/profile.json``,
   for ``driftline drift --profile``.
5. **First weekly run.** ``refresh-and-retrain`` (Prefect) as of the end of the test week plus
   the label delay, so every label has arrived; with no champion yet it trains and registers the
   bootstrap version in MLflow.

Then it prints what a person should review: the contract's inferred choices, what ingest
quarantined and why, the decision taken and the commands to look further.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas is imported by the command that needs it
    import pandas as pd

MAX_TRAIN_WEEKS = 8
MAX_BACKTEST_FOLDS = 3


@dataclass(frozen=True)
class Plan:
    """The windows a file's time span allows, and the run's time."""

    first_event: pd.Timestamp
    last_event: pd.Timestamp
    test_start: pd.Timestamp
    train_weeks: int
    backtest_folds: int
    as_of: pd.Timestamp


def plan_windows(times: pd.Series, label_delay_days: int) -> Plan:
    """Test on the last calendar week holding data, train on up to 8 whole weeks before it.

    Raises InputError when the events span less than two calendar weeks (nothing to train on).
    """
    import pandas as pd

    from driftline.errors import InputError
    from driftline.splits import week_start

    ts = times.dropna()
    if ts.empty:
        raise InputError("no readable event times in the file")
    first, last = ts.min(), ts.max()
    test_start = week_start(last)
    before = int((test_start - week_start(first)).days // 7)
    if before < 1:
        raise InputError(
            f"the events span {first:%Y-%m-%d} to {last:%Y-%m-%d}: quickstart needs at least two calendar weeks "
            "(one to train on, the last one to test on)"
        )
    train_weeks = min(MAX_TRAIN_WEEKS, before)
    folds = min(MAX_BACKTEST_FOLDS, before - 1)
    as_of = test_start + pd.Timedelta(weeks=1, days=label_delay_days)
    return Plan(first, last, test_start, train_weeks, folds, as_of)


def _settings_yaml(contract_name: str, model_name: str, plan: Plan, label_delay_days: int) -> str:
    import yaml

    body = yaml.safe_dump(
        {
            "home": ".driftline",
            "contract": "contract.yaml",
            "model_name": model_name,
            "windows": {
                "train_weeks": plan.train_weeks,
                "test_weeks": 1,
                "label_delay_days": label_delay_days,
                "backtest_folds": plan.backtest_folds,
            },
        },
        sort_keys=False,
    )
    head = (
        f"# Written by 'driftline quickstart' for contract {contract_name!r}; paths are relative to this file.\n"
        f"# windows fit the data ({plan.first_event:%Y-%m-%d} .. {plan.last_event:%Y-%m-%d}); widen train_weeks as "
        "history grows.\n"
    )
    return head + body


def _outcomes(frame: pd.DataFrame, contract: Any, label_delay_days: int) -> pd.DataFrame:
    """The file's labels as an outcomes frame: request id, entity id, label, observation time."""
    import pandas as pd

    from driftline.errors import InputError
    from driftline.ingest import with_request_id
    from driftline.store import OUTCOME_TIME
    from driftline.values import parse_times

    c = contract
    framed = with_request_id(frame, c)
    out = pd.DataFrame(
        {
            c.request_id: framed[c.request_id],
            c.entity_id: framed[c.entity_id],
            c.target.name: framed[c.target.name],
        }
    )
    if OUTCOME_TIME in frame.columns:
        out[OUTCOME_TIME] = frame[OUTCOME_TIME]
    else:
        try:
            ts = parse_times(frame[c.timestamp], f"column {c.timestamp!r}")
        except InputError:  # an unreadable time column: each label is quarantined as bad_timestamp
            ts = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
        out[OUTCOME_TIME] = ts + pd.Timedelta(days=label_delay_days)
    return out


def _ingest_line(name: str, d: dict[str, Any]) -> str:
    line = (
        f"   {name}: {d['rows_in']:,} rows in -> {d['stored']:,} stored, {d['quarantined']:,} quarantined, "
        f"{d['duplicates_skipped']:,} duplicates skipped"
    )
    first = d.get("by_first_reason") or d["by_reason"]
    if first:
        line += " (" + ", ".join(f"{k}: {v:,}" for k, v in sorted(first.items())) + ")"
    return line


def run_quickstart(
    data_file: Path,
    *,
    target: str,
    timestamp: str,
    entity_id: str,
    request_id: str | None,
    positive: str | None,
    workdir: Path,
    model_name: str | None,
    label_delay_days: int,
) -> int:
    """Every step of the module docstring; returns the exit code (0, or 1 when the first run was blocked)."""
    from driftline.cli.drift import _fit
    from driftline.cli.run import _state_summary, stream_environment, streamed_run_logs
    from driftline.errors import DriftlineError, InputError
    from driftline.infer import contract_yaml, infer_with_notes
    from driftline.ingest import ingest_files
    from driftline.io import read_table, write_table
    from driftline.settings import load_settings
    from driftline.store import Store
    from driftline.values import parse_times

    work = workdir.resolve()
    cfg = work / "driftline.yaml"
    contract_path = work / "contract.yaml"
    for existing in (cfg, contract_path, work / ".driftline"):
        if existing.exists():
            raise InputError(f"{existing} already exists; remove it or pass --workdir NEW_DIR")
    name = model_name or Path(data_file).name.split(".")[0] or "model"

    typer.echo(f"1. contract: drafting from {data_file}")
    table = read_table(data_file, text_columns=[c for c in (entity_id, request_id) if c])
    frame = table.frame
    if frame.empty:
        raise InputError(f"{data_file}: no rows")
    pos: str | int | None = positive
    if positive is not None and positive.lstrip("-").isdigit():
        pos = int(positive)
    contract, notes = infer_with_notes(
        frame, target=target, timestamp=timestamp, entity_id=entity_id, request_id=request_id, positive=pos, name=name
    )
    times = parse_times(frame[timestamp], f"{data_file}: timestamp column {timestamp!r}")
    plan = plan_windows(times, label_delay_days)
    work.mkdir(parents=True, exist_ok=True)
    contract_path.write_text(contract_yaml(contract, notes))
    cfg.write_text(_settings_yaml(contract.name, name, plan, label_delay_days))
    typer.echo(f"   wrote {contract_path} ({len(contract.features)} features) and {cfg}")

    settings = load_settings(cfg)
    settings.ensure_home()
    store = Store.from_settings(settings, contract)
    typer.echo("2. ingest: every row checked against the contract")
    predictions = ingest_files([data_file], contract, store, kind="predictions").to_dict()
    typer.echo(_ingest_line("predictions", predictions))
    outcomes_file = write_table(
        _outcomes(frame, contract, label_delay_days), settings.home / "quickstart" / "outcomes.parquet"
    )
    outcomes = ingest_files([outcomes_file], contract, store, kind="outcomes").to_dict()
    typer.echo(_ingest_line("outcomes", outcomes))

    profile_path = settings.reports_dir / "profile.json"
    prof = _fit(Path(data_file), contract, settings, None, None, None)
    prof.save(profile_path)
    typer.echo(f"3. profile: {prof.n_rows:,} rows, {len(prof.features)} features -> {profile_path}")

    typer.echo(
        f"4. first weekly run: refresh-and-retrain as of {plan.as_of:%Y-%m-%d} (test week "
        f"{plan.test_start:%Y-%m-%d}, {plan.train_weeks} training week(s))"
    )
    stream_environment()
    from flows.refresh_and_retrain import refresh_and_retrain

    # The run's log lines go to the Prefect API in force (not to the terminal: the steps above and
    # the review below are this command's output).
    with streamed_run_logs(show=False):
        state = refresh_and_retrain(
            as_of=plan.as_of.to_pydatetime(), trigger="manual", config=str(cfg), return_state=True
        )
    failed, summary, message, error = _state_summary(state)
    if isinstance(error, DriftlineError):
        raise error
    s = summary or {}
    reg = s.get("registration") or {}
    if failed:
        typer.echo(f"   blocked: {message}")
    else:
        metric = settings.gates.primary_metric
        value = (s.get("candidate_metrics") or {}).get(metric)
        shown = f", test {metric} {value:.3f}" if isinstance(value, int | float) else ""
        version = f" version {reg['version']}" if reg.get("version") else ""
        typer.echo(f"   {s.get('action', state.type.value.lower())}{version}{shown}")

    typer.echo("\nReview:")
    typer.echo(f"  - {contract_path}: types, vocabularies (closed: true rejects unknown values), ranges, key: true")
    for feature, note in list(notes.features.items())[:10]:
        typer.echo(f"      {feature}: {note}")
    if notes.request_id:
        typer.echo(f"      request id: {notes.request_id}")
    if notes.target:
        typer.echo(f"      target: {notes.target}")
    ranged = [n for n, f in contract.features.items() if f.type == "numeric" and f.range is not None]
    if ranged:
        typer.echo(
            f"      ranges of {', '.join(ranged[:5])}{' …' if len(ranged) > 5 else ''} are the observed ones plus a "
            "margin, marked range_soft: rows outside are stored and counted, not quarantined; set them to what "
            "is legitimate and drop range_soft to make them hard"
        )
    typer.echo(f"  - {cfg}: windows fitted to this file; the model is registered as {name!r}")
    quarantined = predictions["quarantined"] + outcomes["quarantined"]
    if quarantined:
        typer.echo(f"  - {quarantined:,} quarantined row(s): the store's quarantine table says why, row by row")
    typer.echo("Next:")
    prefix = f".venv/bin/driftline --config {cfg}"
    typer.echo(f"  {prefix} models list")
    typer.echo(f"  {prefix} drift --profile {profile_path} --current NEXT_WEEK.parquet")
    typer.echo(f"  {prefix} run refresh-and-retrain --as-of YYYY-MM-DD   # each week, or deploy prefect.yaml")
    return 1 if failed else 0


def quickstart_cmd(
    data_file: Path = typer.Argument(..., help="Parquet or CSV file with your data (features, target, time, id)."),
    target: str = typer.Option(..., "--target", help="Label column."),
    timestamp: str = typer.Option(..., "--timestamp", help="Event-time column."),
    entity_id: str = typer.Option(..., "--id", help="Entity id column (user, account, device...)."),
    request_id: str | None = typer.Option(None, "--request-id", help="Unique row id column (default: derived)."),
    positive: str | None = typer.Option(None, "--positive", help="Positive label value (default: inferred)."),
    workdir: Path = typer.Option(Path(), "--workdir", help="Where driftline.yaml, contract.yaml, .driftline/ go."),
    model_name: str | None = typer.Option(None, "--model-name", help="Registered model name (default: file name)."),
    label_delay_days: int = typer.Option(7, "--label-delay-days", min=0, help="Days until a label is known."),
) -> None:
    """From a data file to a first weekly decision: contract, settings, ingest, profile, first run."""
    code = run_quickstart(
        data_file,
        target=target,
        timestamp=timestamp,
        entity_id=entity_id,
        request_id=request_id,
        positive=positive,
        workdir=workdir,
        model_name=model_name,
        label_delay_days=label_delay_days,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``quickstart`` to the app."""
    app.command("quickstart")(quickstart_cmd)
