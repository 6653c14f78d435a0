"""Policy replay: which retraining policy keeps average precision up, and at what cost.

For each stream (the simulator's ``concept_drift``, our own loan stream from
``bench/replay_streams.py`` in two variants — the default rate held, and a rate shock that
doubles it — and a ``stable`` simulator stream for false promotions: ``weekly`` and ``drift``
only, 20 runs after the bootstrap, each promotion followed up on the next 4 weeks), the weeks
are replayed in order through ``driftline.pipeline.run_week``, each policy in its own temp home
(its own copy of the filled store, its own SQLite MLflow; the real registry is never touched).
Week ``w``'s production traffic (every logged row of that week, labels from the outcomes) is
scored with the model the policy was serving after its Monday-03:00 run of week ``w``.

Policies:

* ``never``       the bootstrap model (the first run), never retrained;
* ``weekly``      ``force_retrain=True`` every week; the gates decide promotion as in production;
* ``drift``       the default trigger policy (``trigger="schedule"``, no force);
* ``oracle``      the weekly run's candidate (same training window), always served, no gates;
* ``all_history`` one model trained at the first run on every labelled row available then
                  (all weeks before the first run's test-window end), never retrained.

Recovery of a policy = sum over post-onset weeks of (AP_policy - AP_never) divided by the same
sum for ``oracle`` (the gaps are summed first). Retrains count runs that trained a candidate
after the bootstrap. Results are printed and written to ``/tmp/driftline-bench-replay.json``.

    .venv/bin/python bench/bench_replay.py [--quick] [--reuse earlier.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")  # HGB's OpenMP threads spin badly on a shared 2-core box
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
for _k in [k for k in os.environ if k.startswith("DRIFTLINE_") or k == "MLFLOW_TRACKING_URI"]:
    os.environ.pop(_k)  # every setting comes from the temp home's own file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_streams import Stream, loan_stream, simulator_stream  # noqa: E402

OUT_JSON = Path("/tmp/driftline-bench-replay.json")
FIRST_RUN_WEEK = 6  # train weeks 0-3, test week 4 at the first run (train_weeks=4, 7-day label delay)
RECOVERY_TARGET = 0.90
RETRAIN_SHARE_TARGET = 1 / 3


@dataclass
class Config:
    users: int = 3000
    per_week: int = 2500
    weeks: int = 22
    sim_onset: int = 8
    loan_onset: int = 9
    stable_runs: int = 20
    test_size: int = 2500
    max_iter: int = 50
    resamples: int = 1000

    def settings(self, home: Path, contract: Path) -> dict[str, Any]:
        return {
            "home": str(home),
            "contract": str(contract),
            "store_url": f"sqlite:///{home / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "model_name": "replay",
            "windows": {"train_weeks": 4, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
            "sampling": {"test_size": self.test_size},
            "training": {"estimator_params": {"max_iter": self.max_iter}},
            "gates": {"bootstrap_resamples": self.resamples},
        }


QUICK = Config(
    users=800, per_week=800, weeks=10, sim_onset=7, loan_onset=7, stable_runs=3, test_size=700, max_iter=20,
    resamples=200,
)  # fmt: skip


# -- homes ----------------------------------------------------------------------------------
def make_template(root: Path, stream: Stream, cfg: Config) -> Path:
    """A folder with the filled store and the contract, copied into every policy's home."""
    from driftline.store import Store

    template = root / "template"
    template.mkdir(parents=True)
    stream.contract.save(template / "contract.yaml")
    store = Store(f"sqlite:///{template / 'store.db'}", stream.contract).create()
    store.append_predictions(stream.traffic)
    store.append_outcomes(stream.outcomes)
    store.dispose()
    return template


def make_context(root: Path, policy: str, template: Path, cfg: Config) -> Any:
    """An isolated home: a copy of the store, its own SQLite MLflow, its own settings file."""
    from driftline import pipeline
    from driftline.contract import load_contract
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings
    from driftline.store import Store

    home = root / policy
    home.mkdir()
    shutil.copy(template / "store.db", home / "store.db")
    (home / "driftline.yaml").write_text(yaml.safe_dump(cfg.settings(home, template / "contract.yaml")))
    s = load_settings(home / "driftline.yaml")
    s.ensure_home()
    c = load_contract(s.contract)
    return pipeline.Context(s, c, Store.from_settings(s, c).create(), ModelRegistry.from_settings(s), "bench-replay")


# -- one policy's replay -------------------------------------------------------------------------
class StepTimer:
    """A ``call`` for run_week that times every step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - t


@dataclass
class Replay:
    """What one policy did and how its served model scored, week by week."""

    policy: str
    ap: dict[int, float] = field(default_factory=dict)
    served: dict[int, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    run_seconds: float = 0.0
    extra: dict[str, dict[int, float]] = field(default_factory=dict)  # oracle / all_history from the same runs
    followup: list[dict[str, Any]] = field(default_factory=list)  # each promotion: new vs previous champion


def week_ap(model: Any, frame: pd.DataFrame, contract: Any) -> float:
    from driftline.labels import binary_target
    from driftline.metrics import classification_metrics
    from driftline.training import score

    y = binary_target(frame[contract.target.name], contract)
    return float(classification_metrics(y, score(model, frame, contract))["average_precision"])


def replay(policy: str, stream: Stream, template: Path, root: Path, cfg: Config, weeks: range) -> Replay:
    """Run ``policy`` over ``weeks`` (run weeks; the first is the bootstrap) and score each week."""
    from driftline import pipeline
    from driftline.training import train

    ctx = make_context(root, policy, template, cfg)
    out = Replay(policy)
    if policy == "weekly":
        out.extra = {"oracle": {}, "all_history": {}}
    models: dict[str, Any] = {}
    all_history = None
    for w in weeks:
        frame = stream.labelled_week(w)
        if policy != "never" or w == weeks[0]:
            as_of = stream.start + pd.Timedelta(weeks=w, hours=3)
            timer = StepTimer()
            t = time.perf_counter()
            outcome = pipeline.run_week(ctx, as_of, "schedule", force_retrain=policy == "weekly", call=timer)
            out.run_seconds += time.perf_counter() - t
            trained = timer.seconds.get("train-candidate", 0.0) + timer.seconds.get("backtest", 0.0)
            out.train_seconds += trained
            s = outcome.summary
            reg = s.get("registration") or {}
            gates = s.get("gates") or {}
            out.runs.append(
                {
                    "week": w,
                    "as_of": as_of.isoformat(),
                    "status": outcome.status,
                    "action": s["action"],
                    "decision": (s.get("drift") or {}).get("action"),
                    "trigger": (s.get("drift") or {}).get("trigger"),
                    "codes": [c.get("code") for c in (s.get("drift") or {}).get("codes", [])],
                    "flagged": {k: v["severity"] for k, v in ((s.get("drift") or {}).get("flagged") or {}).items()},
                    "trained": "candidate" in outcome.parts,
                    "promoted": bool(reg.get("promoted") and reg.get("created")),
                    "version": reg.get("version"),
                    "comparison": gates.get("comparison"),
                    "champion_ap": (s.get("champion_metrics") or {}).get("average_precision"),
                    "candidate_ap": (s.get("candidate_metrics") or {}).get("average_precision"),
                    "train_rows": (s.get("datasets") or {}).get("train_rows"),
                    "training_window": s.get("training_window"),  # the window the candidate trained on
                    "test_window": (s.get("window") or {}).get("split", {}).get("test_start"),
                    "train_seconds": round(trained, 3),
                    "step_seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
                    "metric": metric_evidence(outcome),
                }
            )
            if policy == "weekly":
                out.extra["oracle"][w] = week_ap(outcome.parts["candidate"].model.pipeline, frame, stream.contract)
                if all_history is None:
                    t = time.perf_counter()
                    all_history = train(outcome.parts["window"].labelled, stream.contract, ctx.settings.training)
                    out.extra["all_history_seconds"] = {0: time.perf_counter() - t}
                    out.extra["all_history_rows"] = {0: float(len(outcome.parts["window"].labelled))}
                out.extra["all_history"][w] = week_ap(all_history.pipeline, frame, stream.contract)
        version = ctx.registry.alias_version("champion")
        if version not in models:
            models[version] = ctx.registry.load(version=version)
        out.served[w] = version
        out.ap[w] = week_ap(models[version], frame, stream.contract)
    ctx.store.dispose()
    out.followup = followup(out, models, stream, weeks)
    return out


def metric_evidence(outcome: Any) -> dict[str, Any] | None:
    """The numbers the metric trigger judged: reference and current metric, both errors, the CUSUM."""
    a = outcome.parts.get("assessment")
    if a is None or not a.performance:
        return None
    from driftline.drift.policy import metric_gap

    perf, metric = a.performance, "average_precision"
    gap = metric_gap(perf, metric)
    iv = perf.get("interval") or {}
    return {
        "reference": (perf.get("change", {}).get(metric) or {}).get("reference"),
        "current": (perf.get("change", {}).get(metric) or {}).get("current"),
        "se": iv.get("se"),
        "reference_se": iv.get("reference_se"),
        "deficit": None if gap is None else gap.deficit,
        "cusum": (a.state or {}).get("metric_cusum"),
    }


def followup(r: Replay, models: dict[str, Any], stream: Stream, weeks: range, horizon: int = 4) -> list[dict[str, Any]]:
    """Was each promotion an improvement? New and previous champion on the next ``horizon`` weeks' traffic."""
    out = []
    for run in r.runs[1:]:
        if not run["promoted"]:
            continue
        w = run["week"]
        previous = r.served.get(w - 1)
        ahead = [x for x in weeks if w <= x < w + horizon]
        frames = [stream.labelled_week(x) for x in ahead]
        new_ap = [week_ap(models[run["version"]], f, stream.contract) for f in frames]
        old_ap = [week_ap(models[previous], f, stream.contract) for f in frames]
        out.append(
            {
                "week": w,
                "version": run["version"],
                "previous": previous,
                "weeks": ahead,
                "paired_test": run["comparison"],
                "mean_ap_new": float(np.mean(new_ap)),
                "mean_ap_previous": float(np.mean(old_ap)),
                "gain": float(np.mean(new_ap) - np.mean(old_ap)),
            }
        )
    return out


# -- figures ------------------------------------------------------------------------------------
def retrains(r: Replay) -> int:
    return sum(run["trained"] for run in r.runs[1:])


def promotions(r: Replay) -> list[dict[str, Any]]:
    return [run for run in r.runs[1:] if run["promoted"]]


def unproven(r: Replay) -> list[dict[str, Any]]:
    """Promotions whose paired interval reaches zero (or that had no comparison at all)."""
    return [
        p
        for p in promotions(r)
        if not p["comparison"] or p["comparison"].get("low") is None or p["comparison"]["low"] <= 0
    ]


def analyse(stream: Stream, reps: dict[str, Replay]) -> dict[str, Any]:
    """Mean AP, recovery, retrains and promotions per policy, and the targets."""
    series = {name: r.ap for name, r in reps.items()}
    series["oracle"] = reps["weekly"].extra["oracle"]
    series["all_history"] = reps["weekly"].extra["all_history"]
    weeks = sorted(series["never"])
    post = [w for w in weeks if stream.onset is not None and w >= stream.onset]
    never = series["never"]
    oracle_gap = sum(series["oracle"][w] - never[w] for w in post)
    weekly_retrains = retrains(reps["weekly"])
    rows = {}
    for name, ap in series.items():
        gap = sum(ap[w] - never[w] for w in post)
        r = reps.get(name)
        rows[name] = {
            "mean_ap": float(np.mean([ap[w] for w in weeks])),
            "mean_ap_post_onset": float(np.mean([ap[w] for w in post])) if post else None,
            "recovery": gap / oracle_gap if post and oracle_gap > 0 else None,
            "retrains": retrains(r) if r else (weekly_retrains if name == "oracle" else 0),
            "promotions": len(promotions(r)) if r else (weekly_retrains if name == "oracle" else 0),
            "unproven_promotions": [p["week"] for p in unproven(r)] if r else [],
            "train_seconds": r.train_seconds if r else None,
            "run_seconds": r.run_seconds if r else None,
            "ap": {str(w): ap[w] for w in weeks},
        }
        rows[name]["retrain_share"] = rows[name]["retrains"] / weekly_retrains if weekly_retrains else None
    rows["oracle"]["train_seconds"] = sum(run["step_seconds"].get("train-candidate", 0) for run in reps["weekly"].runs)
    rows["all_history"]["train_seconds"] = reps["weekly"].extra["all_history_seconds"][0]
    d = rows["drift"]
    targets = {
        "recovery >= 90% of the never->oracle gap": d["recovery"] is not None and d["recovery"] >= RECOVERY_TARGET,
        "retrains <= 1/3 of weekly": d["retrain_share"] is not None and d["retrain_share"] <= RETRAIN_SHARE_TARGET,
        "mean AP >= all_history": d["mean_ap"] >= rows["all_history"]["mean_ap"],
        "no promotion with a paired interval reaching 0": not d["unproven_promotions"],
    }
    return {
        "stream": stream.name,
        "description": stream.description,
        "onset": stream.onset,
        "weeks": weeks,
        "post_onset_weeks": post,
        "oracle_gap_sum": oracle_gap,
        "all_history_rows": int(reps["weekly"].extra["all_history_rows"][0]),
        "policies": rows,
        "targets": targets,
        "runs": {name: r.runs for name, r in reps.items()},
        "served": {name: {str(w): v for w, v in r.served.items()} for name, r in reps.items()},
        "followup": {name: r.followup for name, r in reps.items()},
    }


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_stream(a: dict[str, Any]) -> None:
    print(f"\n## {a['stream']}: {a['description']}")
    print(f"evaluated weeks {a['weeks'][0]}-{a['weeks'][-1]}, post-onset {a['post_onset_weeks'][:1]}..")
    print(f"all_history trained on {a['all_history_rows']:,} labelled rows")
    head = "| policy | mean AP | mean AP post-onset | recovery | retrains | × weekly | promotions | "
    print(head + "promoted with low ≤ 0 | train s | run s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name in ("never", "weekly", "drift", "oracle", "all_history"):
        r = a["policies"][name]
        seconds = f"{fmt(r['train_seconds'], '.1f')} | {fmt(r['run_seconds'], '.1f')}"
        print(
            f"| {name} | {fmt(r['mean_ap'])} | {fmt(r['mean_ap_post_onset'])} | {fmt(r['recovery'], '.0%')} | "
            f"{r['retrains']} | {fmt(r['retrain_share'], '.2f')} | {r['promotions']} | "
            f"{r['unproven_promotions'] or 'none'} | {seconds} |"
        )
    print("\nweekly AP (r = trained a candidate at that Monday's run, * = promoted it)")
    print("| week | " + " | ".join(("never", "weekly", "drift", "oracle", "all_history")) + " |")
    print("|---:|" + "---:|" * 5)
    marks = {}
    for name in ("weekly", "drift"):
        for run in a["runs"][name][1:]:
            marks[(name, run["week"])] = ("*" if run["promoted"] else "r") if run["trained"] else ""
    for w in a["weeks"]:
        cells = []
        for name in ("never", "weekly", "drift", "oracle", "all_history"):
            cells.append(f"{a['policies'][name]['ap'][str(w)]:.3f}{marks.get((name, w), '')}")
        onset = " (onset)" if w == a["onset"] else ""
        print(f"| {w}{onset} | " + " | ".join(cells) + " |")
    print("\ndrift policy, run by run:")
    for run in a["runs"]["drift"]:
        cmp_ = run["comparison"] or {}
        ci = f" paired Δ {fmt(cmp_.get('estimate'))} [{fmt(cmp_.get('low'))}, {fmt(cmp_.get('high'))}]" if cmp_ else ""
        m = run.get("metric") or {}
        z = f" deficit {fmt(m.get('deficit'), '+.2f')} se, CUSUM {fmt(m.get('cusum'), '.2f')}" if m else ""
        print(
            f"  week {run['week']:2d}: {run['action']:<18s} decision={run['decision']} "
            f"trigger={run['trigger']} codes={','.join(run['codes'])} champion AP {fmt(run['champion_ap'])}{ci}{z}"
        )
    for name in ("weekly", "drift"):
        print_followup(name, a["followup"][name])
    print("targets (drift policy):")
    for k, v in a["targets"].items():
        print(f"  {'met   ' if v else 'MISSED'} {k}")


def print_followup(name: str, items: list[dict[str, Any]]) -> None:
    if not items:
        return
    print(f"{name}: each promotion, new vs previous champion on the traffic of the 4 weeks it starts serving")
    for f in items:
        c = f["paired_test"] or {}
        print(
            f"  week {f['week']:2d}: v{f['previous']} -> v{f['version']} paired test Δ {fmt(c.get('estimate'))} "
            f"[{fmt(c.get('low'))}, {fmt(c.get('high'))}]; weeks {f['weeks'][0]}-{f['weeks'][-1]}: "
            f"AP {f['mean_ap_previous']:.3f} -> {f['mean_ap_new']:.3f} ({f['gain']:+.3f})"
        )


def stable_figures(stream: Stream, reps: dict[str, Replay]) -> dict[str, Any]:
    out = {"stream": stream.name, "description": stream.description}
    for name, r in reps.items():
        out[name] = {
            "runs": len(r.runs) - 1,
            "retrains": retrains(r),
            "promotions": [p["week"] for p in promotions(r)],
            "promotion_intervals": [p["comparison"] for p in promotions(r)],
            "mean_ap": float(np.mean(list(r.ap.values()))),
            "run_seconds": r.run_seconds,
            "codes": {str(run["week"]): run["codes"] for run in r.runs[1:] if run["trained"]},
            "intervals": {str(run["week"]): run["comparison"] for run in r.runs[1:] if run["trained"]},
            "followup": r.followup,
            "runs_detail": r.runs,
        }
    return out


def code_state() -> dict[str, Any]:
    """The commit, and whether library files had uncommitted edits (other engineers work here)."""
    import hashlib
    import subprocess

    here = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(here), *argv], capture_output=True, text=True, check=False).stdout

    diff = git("diff", "HEAD", "--", "driftline")
    return {
        "commit": git("rev-parse", "--short=12", "HEAD").strip(),
        "dirty_library_files": git("diff", "HEAD", "--name-only", "--", "driftline").split(),
        "library_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


REUSED = ("never", "weekly", "oracle", "all_history")


def load_reuse(path: Path, cfg: Config) -> dict[str, Any]:
    """An earlier run's JSON, checked to be of the same configuration."""
    previous = json.loads(path.read_text())
    if previous.get("config") != cfg.__dict__:
        raise SystemExit(f"--reuse {path}: config {previous.get('config')} differs from {cfg.__dict__}")
    return previous


def reused_replays(a: dict[str, Any]) -> dict[str, Replay]:
    """never and weekly (with oracle and all_history) of one stream, rebuilt from an earlier run's JSON."""
    out = {}
    p = a["policies"]
    for name in ("never", "weekly"):
        r = Replay(name)
        r.ap = {int(w): v for w, v in p[name]["ap"].items()}
        r.served = {int(w): v for w, v in a["served"][name].items()}
        r.runs = a["runs"][name]
        r.train_seconds, r.run_seconds = p[name]["train_seconds"], p[name]["run_seconds"]
        r.followup = a["followup"][name]
        out[name] = r
    out["weekly"].extra = {
        "oracle": {int(w): v for w, v in p["oracle"]["ap"].items()},
        "all_history": {int(w): v for w, v in p["all_history"]["ap"].items()},
        "all_history_seconds": {0: p["all_history"]["train_seconds"]},
        "all_history_rows": {0: float(a["all_history_rows"])},
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~2-minute smoke run (smaller streams, fewer weeks)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    ap.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="take never / weekly / oracle / all_history from this earlier JSON (same config and seed) and "
        "replay only the drift policy: a trigger change does not alter them (never is not retrained, weekly "
        "is forced every week and the gates are unchanged); the figures say they were reused",
    )
    args = ap.parse_args()
    cfg = QUICK if args.quick else Config()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import great_expectations  # noqa: F401  (imports before the clock: every policy would pay them once)
    import mlflow  # noqa: F401

    t_all = time.perf_counter()
    last = cfg.weeks - 1
    streams = [
        simulator_stream("concept_drift", cfg.weeks, cfg.users, args.seed, cfg.sim_onset),
        loan_stream(cfg.weeks, cfg.per_week, seed=7 + args.seed, onset=cfg.loan_onset, hold_rate=True),
        loan_stream(cfg.weeks, cfg.per_week, seed=7 + args.seed, onset=cfg.loan_onset, hold_rate=False),
    ]
    stable = simulator_stream("stable", FIRST_RUN_WEEK + cfg.stable_runs + 1, cfg.users, args.seed + 1, None)
    root = Path(tempfile.mkdtemp(prefix="driftline-bench-replay-"))
    results: dict[str, Any] = {
        "config": cfg.__dict__,
        "first_run_week": FIRST_RUN_WEEK,
        "code": code_state(),
        "streams": [],
    }
    print(f"code: {results['code']}")
    previous = load_reuse(args.reuse, cfg) if args.reuse else None
    if previous is not None:
        results["reused"] = {"from": str(args.reuse), "code": previous.get("code"), "policies": REUSED}
    try:
        for i, stream in enumerate(streams):
            base = root / f"s{i}"
            template = make_template(base, stream, cfg)
            reps = reused_replays(previous["streams"][i]) if previous is not None else {}
            for policy in ("never", "weekly", "drift"):
                if policy in reps:
                    continue
                t = time.perf_counter()
                reps[policy] = replay(policy, stream, template, base, cfg, range(FIRST_RUN_WEEK, last + 1))
                print(f"[{stream.name}] {policy}: {time.perf_counter() - t:.1f} s", flush=True)
            a = analyse(stream, reps)
            results["streams"].append(a)
            print_stream(a)
        base = root / "stable"
        template = make_template(base, stable, cfg)
        reps = {}
        for policy in ("weekly", "drift"):
            if previous is not None and policy == "weekly":
                continue
            t = time.perf_counter()
            reps[policy] = replay(policy, stable, template, base, cfg, range(FIRST_RUN_WEEK, stable.weeks))
            print(f"[{stable.name}] {policy}: {time.perf_counter() - t:.1f} s", flush=True)
        st = stable_figures(stable, reps)
        if previous is not None:
            st = {**st, "weekly": previous["stable"]["weekly"]}
        results["stable"] = st
        print(f"\n## {stable.name}: {stable.description}")
        for name in ("weekly", "drift"):
            r = st[name]
            print(
                f"  {name}: {r['runs']} runs after the bootstrap, {r['retrains']} retrains, "
                f"promotions {r['promotions'] or 'none'} (target: none), mean AP {r['mean_ap']:.3f}"
            )
            detail = {str(run["week"]): run for run in r["runs_detail"]}
            for week, codes in r["codes"].items():
                c = r["intervals"][week] or {}
                ci = f"{fmt(c.get('estimate'))} [{fmt(c.get('low'))}, {fmt(c.get('high'))}]"
                window = (detail[week].get("training_window") or {}).get("train_weeks")
                flagged = ",".join(f"{k}:{v}" for k, v in detail[week]["flagged"].items()) or "-"
                print(f"    week {week}: {','.join(codes)} flagged {flagged} window {window}w paired Δ {ci}")
            print_followup(name, r["followup"])
        total = time.perf_counter() - t_all
        results["total_seconds"] = total
        print(f"\ntotal {total:.0f} s (excluding imports)")
        args.out.write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
