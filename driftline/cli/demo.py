"""``driftline demo``: a quarter of churn traffic served through the gateway, the closed loop, the versions.

The story it shows (16 weeks): the weeks before the first run are the old system's log, ingested
from a file; from the bootstrap version on, simulated clients send every request **through the
gateway** (in-process, the library's :class:`driftline.serve.app.Gateway`), which writes the
predictions log; outcomes arrive through outcomes ingest. Right after the bootstrap, while
nothing else is rolling out, a deliberately bad candidate (trained on shuffled labels) is rolled
out and the rollout reverts it on its own. Quiet weeks make no version. Concept drift from
week 6 erodes the champion until the trigger policy retrains; a passing candidate waits as
``challenger`` and reaches ``champion`` only through its rollout (shadow, then canary
10 → 50 → 100 %), one decision per batch of traffic.
From week 14 serving sends country names instead of ISO codes: the skew check stops the run, the
reviewed alias mapping is applied to the contract (what ``driftline skew --apply`` writes) and
the week is rerun, which passes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
import yaml

REQUEST_RECORDS = 500
"""Records per simulated client request (one JSON body ``{"records": [...]}``)."""
DECIDE_EVERY = (200, 500)
"""During a rollout, one decision per a sixth of a week's traffic, within these bounds (records)."""
DEMO_ROLLOUT = {
    "steps": [10.0, 50.0, 100.0],
    "min_shadow_requests": 200,
    "min_requests": 50,
    "min_labelled": 50,
    "min_positives": 5,
    "interval_seconds": 1.0,
}
"""Small minimum samples so that a rollout completes within a week of the demo's traffic."""
BAD_NOTE = "deliberately bad candidate for the demo: trained on shuffled labels"


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
                # A passing candidate waits as challenger (gates.auto_promote is false by default);
                # the demo rolls it out with these small samples.
                "rollout": DEMO_ROLLOUT,
            },
            sort_keys=False,
        )
    )
    return cfg


def _line(week: int, as_of: pd.Timestamp, failed: bool, summary: dict[str, Any] | None, message: str) -> str:
    head = f"week {week:2d} ({as_of:%Y-%m-%d})"
    s = summary or {}
    if failed:  # the reasons name each blocking skew finding with its rows and suggested mapping
        return f"{head}  [red]blocked[/red]  {message}"
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


# -- the simulated clients -------------------------------------------------------------------------
class Clients:
    """Simulated clients: send traffic to an in-process gateway, feed the outcomes back by ingest.

    The gateway is the library's :class:`~driftline.serve.app.Gateway` with the demo's settings,
    as ``driftline serve`` builds it, minus HTTP: ``predict(body, started)`` is what the
    ``/predict`` endpoint calls. Its alias watcher and rollout follower are re-read after every
    registry change (:meth:`sync`) instead of polled, so each request sees the state the demo
    just wrote. :meth:`drain` waits until the log writers stored every row the gateway accepted.
    """

    def __init__(self, settings: Any, contract: Any, sim: Any, home: Path) -> None:
        self.settings = settings
        self.sim = sim
        self.home = home
        self.gw: Any = None
        self.contract = contract
        self.expect_predictions = 0
        self.expect_rollout_rows = 0
        self.variants: dict[str, int] = {}
        self._outcome_files = 0
        self._labels = sim.outcomes.set_index(sim.contract.request_id)

    def open(self, contract: Any | None = None) -> None:
        """Start (or restart, e.g. with an updated contract) the gateway."""
        from driftline.serve.app import Gateway
        from driftline.serve.door import MAX_BODY_BYTES, MAX_RECORDS

        if self.gw is not None:
            self.close()
        if contract is not None:
            self.contract = contract
        self.gw = Gateway(
            self.settings,
            self.contract,
            poll_seconds=3600.0,  # the demo re-reads the registry itself after each change (sync)
            admin_token=None,
            queue_capacity=50_000,
            batch_rows=2_000,
            flush_seconds=0.05,
            max_body_bytes=MAX_BODY_BYTES,
            max_records=MAX_RECORDS,
        )
        self.gw.open()
        self.expect_predictions = self.expect_rollout_rows = 0

    def close(self) -> None:
        if self.gw is not None:
            self.gw.close()
            self.gw = None

    def sync(self) -> None:
        """Have the gateway re-read the champion alias and the rollout row now."""
        self.gw.watcher.check()
        self.gw._follow_once()

    def send(self, frame: pd.DataFrame) -> None:
        """Send ``frame``'s rows as requests of REQUEST_RECORDS records; any non-200 answer is an error."""
        from driftline.errors import DriftlineError

        c = self.contract
        rows = frame[list(c.row_columns)].copy()
        rows[c.timestamp] = rows[c.timestamp].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        gw = self.gw
        for i in range(0, len(records), REQUEST_RECORDS):
            part = records[i : i + REQUEST_RECORDS]
            r = gw.rollout
            live = gw.challenger.current if gw.challenger is not None else None
            shadowing = (
                r is not None and r.phase == "shadow" and live is not None and live.version == r.challenger
            ) and self.settings.rollout.shadow_share >= 100
            status, payload, _ = gw.predict(json.dumps({"records": part}).encode(), time.perf_counter())
            if status != 200:
                raise DriftlineError(f"the gateway answered {status}: {str(payload)[:300]}")
            for p in payload["predictions"]:
                self.variants[p["variant"]] = self.variants.get(p["variant"], 0) + 1
            self.expect_predictions += len(part)
            if r is not None and r.active:
                self.expect_rollout_rows += len(part) * (2 if shadowing else 1)

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until the predictions log and the rollout log hold every row sent so far."""
        gw = self.gw
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                gw.writer.written + gw.writer.dropped >= self.expect_predictions
                and gw.rollout_log.written + gw.rollout_log.dropped + gw.shadow.skipped >= self.expect_rollout_rows
                and not gw.writer.depth
                and not gw.rollout_log.depth
            ):
                return
            time.sleep(0.02)
        logging.getLogger("driftline.demo").error("the gateway's log writers did not drain within %.0f s", timeout)

    def outcomes(self, frame: pd.DataFrame, store: Any) -> None:
        """Feed the outcomes of ``frame``'s requests back through outcomes ingest (a Parquet file)."""
        from driftline.ingest import ingest_files

        if frame.empty:
            return
        ids = frame[self.sim.contract.request_id]
        out = self._labels.loc[ids].reset_index()
        self._outcome_files += 1
        path = self.home / "sim" / "outcomes" / f"outcomes-{self._outcome_files:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(path, index=False)
        ingest_files([path], self.contract, store, kind="outcomes")


# -- the rollout -----------------------------------------------------------------------------------
def _where(phase: str, share: float) -> str:
    return f"canary {share:g}%" if phase == "canary" else phase


def _decision_line(version: str, before: Any, d: Any) -> str:
    colour = {"promote": "green", "revert": "red", "abort": "red", "advance": "cyan"}.get(d.action, "dim")
    why = d.reasons[0] if d.reasons else None
    text = f"{why.code}: {why.text}" if why is not None else "-"
    text = text if len(text) <= 150 else text[:149] + "…"
    return (
        f"           rollout v{version}  {_where(before.phase, before.share):<11} "
        f"[{colour}]{d.action:<11}[/{colour}] {text}"
    )


def _bad_candidate(settings: Any, sim: Any, as_of: pd.Timestamp, seed: int, registry: Any) -> str:
    """Train a model on shuffled labels of the last labelled weeks and register it (gates marked passed)."""
    from driftline import training
    from driftline.registry.core import Verdict

    c = sim.contract
    w = settings.windows
    cutoff = as_of - pd.Timedelta(days=w.label_delay_days)
    labelled = sim.traffic.merge(sim.outcomes[[c.request_id, c.target.name]], on=c.request_id)
    ts = labelled[c.timestamp]
    window = labelled[(ts < cutoff) & (ts >= cutoff - pd.Timedelta(weeks=w.train_weeks))].reset_index(drop=True)
    window[c.target.name] = np.random.default_rng(seed).permutation(window[c.target.name].to_numpy())
    model = training.train(window, c, settings.training)
    return registry.register_candidate(
        pipeline=model.pipeline,
        input_example=training.features_frame(window.head(3), c),
        params=model.params,
        metrics={},
        tags={"trigger": "manual", "demo_note": BAD_NOTE},
        artifacts={"contract.yaml": c.to_yaml()},
        verdict=Verdict(gates_passed=True, reasons=(BAD_NOTE,)),
        idempotency_key=f"demo-bad-candidate-{seed}-{as_of:%Y%m%d}",
        run_name="demo-bad-candidate",
    ).version


def _apply_aliases(findings: list[dict[str, Any]], contract: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """Add the skew check's suggested renames to the contract file (what ``driftline skew --apply`` writes)."""
    mappings = {f["feature"]: f["mapping"] for f in findings if f.get("kind") == "vocabulary" and f.get("mapping")}
    if not mappings:
        return contract, {}
    updated = contract.with_aliases(mappings)
    updated.save(path)
    return updated, mappings


def run_demo(workdir: Path | None, weeks: int, users: int, first_week: int, seed: int) -> None:
    """Run the whole demo on the embedded default (SQLite store, MLflow on SQLite, ephemeral Prefect)."""
    from rich.console import Console

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    serve_log = logging.getLogger("driftline.serve")
    level = serve_log.level
    serve_log.setLevel(logging.ERROR)  # the gateway's start/stop notes; the demo prints what happens
    console = Console()
    try:
        _run(console, workdir, weeks, users, first_week, seed)
    finally:
        serve_log.setLevel(level)


def _run(console: Any, workdir: Path | None, weeks: int, users: int, first_week: int, seed: int) -> None:
    from rich.table import Table

    from driftline.ingest import ingest_files
    from driftline.registry import ModelRegistry
    from driftline.rollout import RolloutRunner
    from driftline.settings import load_settings
    from driftline.simulate import simulate, write_simulation
    from driftline.store import Store

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
    contract = sim.contract
    c = contract
    start = pd.Timestamp(sim.meta["start"])

    def as_of_week(week: int) -> pd.Timestamp:
        return start + pd.Timedelta(weeks=week, hours=3)

    # The weeks before the first run: the old system's log, ingested as files.
    ts = sim.traffic[c.timestamp]
    history = sim.traffic[ts < as_of_week(first_week)]
    hist_path = home / "sim" / "history.parquet"
    history.to_parquet(hist_path, index=False)
    console.print(
        f"[bold]2. History[/bold]: the {len(history):,} requests before week {first_week} (the old system's log) "
        "and their outcomes go in through ingest"
    )
    store = Store.from_settings(settings, contract).create()
    clients = Clients(settings, contract, sim, home)
    rep = ingest_files([hist_path], contract, store, kind="predictions").to_dict()
    console.print(
        f"   traffic: {rep['rows_in']:,} rows in → {rep['stored']:,} stored, {rep['quarantined']:,} quarantined"
    )
    clients.outcomes(history, store)

    console.print(
        f"[bold]3. Weekly refresh-and-retrain[/bold], weeks {first_week}..{weeks} (Prefect, ephemeral API); from the "
        f"bootstrap on, clients send each week's traffic through the gateway in requests of {REQUEST_RECORDS} records"
    )
    from driftline.cli.run import _state_summary, quiet_prefect_logs
    from flows.refresh_and_retrain import refresh_and_retrain

    registry = ModelRegistry.from_settings(settings)
    runner = RolloutRunner(registry, store, contract, settings)
    rollouts: list[dict[str, Any]] = []  # one per rollout the demo started, for the final table
    bad_version: str | None = None
    alias_weeks: list[int] = []

    def weekly(week: int) -> tuple[bool, dict[str, Any] | None, str]:
        with quiet_prefect_logs():
            state = refresh_and_retrain(
                as_of=as_of_week(week).to_pydatetime(), trigger="schedule", config=str(cfg), return_state=True
            )
        failed, summary, message, _ = _state_summary(state)
        return failed, summary, message

    def start_rollout(version: str, reason: str, label: str) -> None:
        r = runner.start(version, actor="demo", reason=reason)
        rollouts.append({"id": r.rollout_id, "version": version, "champion": r.champion, "what": label})
        console.print(f"           rollout v{version} started against champion v{r.champion} ({label}): shadow")
        clients.sync()

    def step() -> None:
        before = runner.status()
        d = runner.step(actor="demo")
        console.print(_decision_line(before.challenger, before, d), highlight=False)
        clients.sync()

    def serve_week(frame: pd.DataFrame) -> None:
        """One week of traffic through the gateway; while a rollout is active, a decision every few hundred rows."""
        every = max(DECIDE_EVERY[0], min(DECIDE_EVERY[1], len(frame) // 6))
        cuts = np.linspace(0, len(frame), max(1, round(len(frame) / every)) + 1).round().astype(int)
        i = 0
        while i < len(frame):
            r = runner.status()
            if r is not None and r.active:
                part = frame.iloc[i : int(cuts[cuts > i][0])]  # equal parts: no thin last decision
                clients.send(part)
                clients.drain()
                clients.outcomes(part, store)
                step()
                i += len(part)
            else:
                rest = frame.iloc[i:]
                clients.send(rest)
                clients.drain()
                clients.outcomes(rest, store)
                i = len(frame)

    week, served = first_week, first_week
    while week <= weeks:
        as_of = as_of_week(week)
        if week > served:
            served = week
            sent = sim.traffic[(ts >= as_of_week(week - 1)) & (ts < as_of)]
            serve_week(sent)
        failed, summary, message = weekly(week)
        console.print(_line(week, as_of, failed, summary, message), highlight=False)
        findings = (summary or {}).get("skew_findings") or []
        if failed and findings and week not in alias_weeks:
            contract, applied = _apply_aliases(findings, contract, Path(settings.contract))
            if applied:
                alias_weeks.append(week)
                for feature, mapping in applied.items():
                    console.print(
                        f"           reviewed mapping applied: {feature} aliases for {len(mapping)} values written "
                        f"to {Path(settings.contract).name} (as driftline skew --apply); gateway restarted with it; "
                        f"rerunning week {week}",
                        highlight=False,
                    )
                store.dispose()
                store = Store.from_settings(settings, contract).create()
                runner = RolloutRunner(registry, store, contract, settings)
                if clients.gw is not None:
                    clients.open(contract)
                    clients.sync()
                else:
                    clients.contract = contract
                continue  # the same week again, with the aliases
        if week in alias_weeks and not failed:
            console.print(f"           week {week} passes with the alias mapping", highlight=False)
        if clients.gw is None and registry.alias_version("champion") is not None:
            clients.open()
            console.print(
                f"           gateway up: champion v{clients.gw.served.version}; clients now send traffic through it",
                highlight=False,
            )
        elif clients.gw is not None:
            clients.sync()
        reg = (summary or {}).get("registration") or {}
        version = reg.get("version")
        current = runner.status()
        if (
            version
            and reg.get("created")
            and registry.alias_version("challenger") == str(version)
            and registry.alias_version("champion") != str(version)
        ):
            if current is not None and current.active and current.challenger != str(version):
                step()  # the new challenger replaced the one in rollout: that rollout aborts
                current = runner.status()
            if current is None or not current.active:
                start_rollout(str(version), f"passed gates in the week-{week} run", "retrained")
        elif bad_version is None and not failed and (current is None or not current.active) and clients.gw is not None:
            bad_version = _bad_candidate(settings, sim, as_of, seed, registry)
            console.print(
                f"           v{bad_version} registered by hand ({BAD_NOTE}); rolled out to show the guardrails",
                highlight=False,
            )
            start_rollout(bad_version, BAD_NOTE, "bad on purpose")
        week += 1
    # Whatever rollout is still running gets the rest of the last week's traffic.
    tail = sim.traffic[ts >= as_of_week(weeks)]
    if clients.gw is not None and len(tail) and (runner.status() is not None and runner.status().active):
        console.print("   last days of traffic (a rollout is still running)")
        serve_week(tail)
    if clients.gw is not None:
        clients.close()
    shown = ", ".join(f"{k} {v:,}" for k, v in sorted(clients.variants.items()))
    console.print(f"   gateway answered {sum(clients.variants.values()):,} records ({shown})")

    console.print("[bold]4. Versions[/bold] in the MLflow registry")
    table = Table("version", "trigger", "test AP", "aliases", "gates", "created (UTC)")
    for v in registry.list_versions():
        ap = v.metric("average_precision")
        table.add_row(
            str(v.version),
            (v.trigger or "-") + (" (shuffled labels)" if v.tags.get("demo_note") else ""),
            f"{ap:.3f}" if ap is not None else "-",
            ", ".join(v.aliases) or "-",
            v.gate_status,
            f"{v.created_at:%m-%d %H:%M}",
        )
    console.print(table)
    console.print("[bold]5. Rollouts[/bold] (decisions in the store: driftline rollout status)")
    rt = Table("#", "version", "vs", "why", "outcome", "decisions", "steps taken", "last reason")
    for ro in rollouts:
        kept = runner.rollouts.decisions(registry.model_name, ro["id"])
        path: list[str] = []
        for d in kept:
            where = f"{d.share:g}%" if d.phase == "canary" else d.phase
            if not path or path[-1] != where:
                path.append(where)
        last = kept[-1] if kept else None
        outcome = {"promote": "promoted", "revert": "reverted", "abort": "aborted"}.get(
            last.action if last else "", "in progress"
        )
        reason = (last.reasons[0] if last and last.reasons else {}) or {}
        rt.add_row(
            str(ro["id"]),
            f"v{ro['version']}",
            f"v{ro['champion']}",
            ro["what"],
            outcome,
            str(len(kept)),
            "→".join(path) or "-",
            str(reason.get("code", "-")),
        )
    console.print(rt)
    store.dispose()
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
    console.print(f"  .venv/bin/driftline --config {cfg} rollout status", highlight=False, soft_wrap=True)
    console.print(
        f"  .venv/bin/driftline --config {cfg} models rollback --previous --reason 'demo'",
        highlight=False,
        soft_wrap=True,
    )
