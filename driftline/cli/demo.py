"""``driftline demo``: a quarter of churn traffic, the weekly flow run week by week, the versions.

The story it shows (16 weeks): a bootstrap version; quiet weeks where nothing triggers and no
version is made; concept drift from week 6 that erodes the champion until the trigger policy
retrains and better versions are promoted; and, from week 14, serving sends country names
instead of ISO codes — the skew check stops the run and suggests the mapping.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import typer
import yaml


def scenario(weeks: int) -> str:
    """Concept drift from ~3/8 of the way in, country names in the second-to-last week (6 and 14 of 16)."""
    return f"concept_drift@{max(1, round(weeks * 3 / 8))},country_names@{weeks - 2}"


def _write_config(home: Path, contract_path: Path) -> Path:
    cfg = home / "driftline.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "home": str(home),
                "contract": str(contract_path),
                "model_name": "churn-demo",
                "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
                "training": {"estimator_params": {"max_iter": 80}},
                # The demo promotes passing candidates at once; the rollout path is driftline rollout.
                "gates": {"auto_promote": True},
            },
            sort_keys=False,
        )
    )
    return cfg


def _line(week: int, as_of: pd.Timestamp, failed: bool, summary: dict[str, Any] | None, message: str) -> str:
    head = f"week {week:2d} ({as_of:%Y-%m-%d})"
    if failed:
        return f"{head}  [red]blocked[/red]  {message}"
    s = summary or {}
    action = s.get("action", "?")
    drift = s.get("drift") or {}
    if action == "no retrain":
        why = "; ".join(drift.get("reasons", [])[:2])
        return f"{head}  [dim]no retrain[/dim]  {why}"
    reg = s.get("registration") or {}
    metric = "average_precision"
    cand = (s.get("candidate_metrics") or {}).get(metric)
    champ = (s.get("champion_metrics") or {}).get(metric)
    trig = drift.get("trigger") or "-"
    shown = (
        f"AP {champ:.3f} → {cand:.3f}" if champ is not None and cand is not None else f"AP {cand:.3f}" if cand else ""
    )
    colour = "green" if action == "promoted" else "yellow"
    failed = [g["name"] for g in (s.get("gates") or {}).get("gates", []) if not g["passed"]]
    note = f"  gates failed: {', '.join(failed)}" if failed else ""
    return f"{head}  [{colour}]{action} v{reg.get('version', '?')}[/{colour}] (trigger {trig})  {shown}{note}"


def run_demo(workdir: Path | None, weeks: int, users: int, first_week: int, seed: int) -> None:
    """Run the whole demo on the embedded default (SQLite store, MLflow on SQLite, ephemeral Prefect)."""
    import logging

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from driftline.ingest import ingest_files
    from driftline.settings import load_settings
    from driftline.simulate import simulate, write_simulation
    from driftline.store import Store

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    console = Console()
    home = (workdir or Path(".driftline")).resolve()
    if (home / "store.db").exists() or (home / "mlflow.db").exists():
        raise typer.BadParameter(f"{home} already holds a demo; remove it or pass --workdir NEW_DIR")
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    spec = scenario(weeks)
    console.print(f"[bold]1. Simulating[/bold] {weeks} weeks × {users:,} users, scenario {spec} (seed {seed})")
    sim = simulate(weeks=weeks, users=users, scenarios=spec, seed=seed)
    files = write_simulation(sim, home / "sim")
    cfg = _write_config(home, files["contract"])
    settings = load_settings(cfg)
    settings.ensure_home()

    console.print("[bold]2. Ingesting[/bold] traffic and outcomes into the store")
    store = Store.from_settings(settings, sim.contract)
    for name in ("traffic", "outcomes"):
        rep = ingest_files([files[name]], sim.contract, store).to_dict()
        console.print(
            f"   {name}: {rep['rows_in']:,} rows in → {rep['stored']:,} stored, "
            f"{rep['quarantined']:,} quarantined, {rep['duplicates_skipped']:,} duplicates"
            + (f"; unseen values {rep['unseen_categories']}" if rep["unseen_categories"] else "")
        )

    console.print(f"[bold]3. Weekly refresh-and-retrain[/bold], weeks {first_week}..{weeks} (Prefect, ephemeral API)")
    from driftline.cli.run import _state_summary, quiet_prefect_logs
    from flows.refresh_and_retrain import refresh_and_retrain

    start = pd.Timestamp(sim.meta["start"])
    skew_shown = False
    with Progress(
        TextColumn("   weekly runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("weekly", total=weeks - first_week + 1)
        for week in range(first_week, weeks + 1):
            as_of = start + pd.Timedelta(weeks=week, hours=3)
            with quiet_prefect_logs():
                state = refresh_and_retrain(
                    as_of=as_of.to_pydatetime(), trigger="schedule", config=str(cfg), return_state=True
                )
            failed, summary, message, _ = _state_summary(state)
            progress.console.print(_line(week, as_of, failed, summary, message), highlight=False)
            if failed and summary and summary.get("skew_findings") and not skew_shown:
                for f in summary["skew_findings"][:2]:
                    mapping = f.get("mapping") or {}
                    sample = dict(list(mapping.items())[:4])
                    progress.console.print(
                        f"           skew: {f.get('feature')} {f.get('kind')} ({f.get('severity')}), "
                        f"{f.get('rows_affected', 0):,} rows; suggested mapping {sample}"
                        + (" …" if len(mapping) > 4 else ""),
                        highlight=False,
                    )
                skew_shown = True
            progress.advance(bar)

    console.print("[bold]4. Versions[/bold] in the MLflow registry")
    from driftline.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    table = Table("version", "trigger", "test AP", "aliases", "gates", "created (UTC)")
    for v in registry.list_versions():
        ap = v.metric("average_precision")
        table.add_row(
            str(v.version),
            v.trigger or "-",
            f"{ap:.3f}" if ap is not None else "-",
            ", ".join(v.aliases) or "-",
            v.gate_status,
            f"{v.created_at:%m-%d %H:%M}",
        )
    console.print(table)
    elapsed = time.perf_counter() - t0
    console.print(f"\nDone in {elapsed:.0f} s. State is under {home}/")
    console.print("Browse the versions, their tags and artifacts in the MLflow UI:")
    console.print(
        f"  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} "
        f"--default-artifact-root {settings.artifact_root} --port 5000",
        highlight=False,
        soft_wrap=True,
    )
    console.print("  then open http://127.0.0.1:5000/#/models/churn-demo")
    console.print("From the CLI:")
    console.print(f"  .venv/bin/driftline --config {cfg} models list", highlight=False, soft_wrap=True)
    console.print(f"  .venv/bin/driftline --config {cfg} models history", highlight=False, soft_wrap=True)
    console.print(
        f"  .venv/bin/driftline --config {cfg} models rollback --previous --reason 'demo'",
        highlight=False,
        soft_wrap=True,
    )
