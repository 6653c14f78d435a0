"""Policy replay: which retraining policy keeps average precision up, and at what cost.

For each stream (the simulator's ``concept_drift``, our own loan stream from
``bench/replay_streams.py`` in two variants — the default rate held, and a rate shock that
doubles it — and a ``stable`` simulator stream for false promotions: ``weekly`` and ``drift``
only, 20 runs after the bootstrap, each promotion followed up on the next 4 weeks), the weeks
are replayed in order by ``driftline.replay`` (the library behind ``driftline replay``: one copy
of the replay logic), which runs ``driftline.pipeline.run_week`` for each policy in its own
scratch registry over a read-only view of the filled store, sharing results where policies
coincide. Week ``w``'s production traffic (every logged row of that week, labels from the
outcomes) is scored with the model the policy was serving after its Monday-03:00 run of week
``w``; a candidate that passes the gates serves from that week (the rollout assumed to succeed).

Policies:

* ``never``       the bootstrap model (the first run), never retrained;
* ``weekly``      ``training.retrain_on_schedule`` every week; the gates decide promotion as in production;
* ``drift``       the default trigger policy (``trigger="schedule"``, no force);
* ``oracle``      the weekly run's candidate (same training window), always served, no gates;
* ``all_history`` one model trained at the first run on every labelled row available then
                  (all weeks before the first run's test-window end), never retrained.

Recovery of a policy = sum over post-onset weeks of (AP_policy - AP_never) divided by the same
sum for ``oracle`` (the gaps are summed first). Retrains count runs that trained a candidate
after the bootstrap. Results are printed and written to ``/tmp/driftline-bench-replay.json``.

    .venv/bin/python bench/bench_replay.py [--quick] [--reuse earlier.json]
    .venv/bin/python bench/bench_replay.py --speed   # 26 decisions of a ~1M-row history, 3 policies
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
    """A user's home: the filled store, the contract and driftline.yaml (replay only reads it)."""
    from driftline.store import Store

    template = root / "template"
    template.mkdir(parents=True)
    stream.contract.save(template / "contract.yaml")
    store = Store(f"sqlite:///{template / 'store.db'}", stream.contract).create()
    store.append_predictions(stream.traffic)
    store.append_outcomes(stream.outcomes)
    store.dispose()
    (template / "driftline.yaml").write_text(yaml.safe_dump(cfg.settings(template, template / "contract.yaml")))
    return template


# -- the policies' replay (driftline.replay: one copy of the logic) -----------------------------------
@dataclass
class Replay:
    """What one policy did and how its served model scored, week by week (bench weeks)."""

    policy: str
    ap: dict[int, float] = field(default_factory=dict)
    served: dict[int, str] = field(default_factory=dict)  # the served model's lineage token
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


def replay_stream(stream: Stream, template: Path, root: Path, policies: list[str], weeks: range) -> dict[str, Replay]:
    """Replay ``policies`` over ``weeks`` (run weeks; the first is the bootstrap) with one shared replayer."""
    from driftline import replay as rp
    from driftline.contract import load_contract
    from driftline.settings import load_settings
    from driftline.store import Store
    from driftline.training import train

    s = load_settings(template / "driftline.yaml")
    c = load_contract(s.contract)
    store = Store.from_settings(s, c)
    start = stream.start + pd.Timedelta(weeks=weeks[0])
    end = stream.start + pd.Timedelta(weeks=weeks[-1])
    r = rp.Replayer(s, c, store, start, end, resamples=100, workdir=root / "replay", actor="bench-replay")
    store.dispose()
    all_history: dict[str, Any] = {}

    def bootstrap_all_history(i: int, outcome: Any) -> None:
        if i == 0 and not all_history:
            t = time.perf_counter()
            labelled = outcome.parts["window"].labelled
            all_history["model"] = train(labelled, c, r.settings.training).pipeline
            all_history["seconds"], all_history["rows"] = time.perf_counter() - t, float(len(labelled))

    out: dict[str, Replay] = {}
    try:
        for policy in [p for p in rp.run_order([rp.parse_policy(p) for p in policies]) if p.name in policies]:
            t = time.perf_counter()
            res = r.run(policy, on_run=bootstrap_all_history if policy.kind == "weekly" else None)
            if policy.name in policies:
                out[policy.name] = as_replay(res, weeks[0])
                print(f"[{stream.name}] {policy.name}: {time.perf_counter() - t:.1f} s", flush=True)
        if "weekly" in out:
            oracle = r.oracle()
            out["weekly"].extra = {
                "oracle": {weeks[0] + w.week: w.metric["estimate"] for w in oracle.weeks},
                "all_history": {w: week_ap(all_history["model"], stream.labelled_week(w), c) for w in weeks},
                "all_history_seconds": {0: all_history["seconds"]},
                "all_history_rows": {0: all_history["rows"]},
            }
        for rep in out.values():
            rep.followup = followup(rep, r, weeks)
    finally:
        r.close()
    return out


def as_replay(res: Any, first: int) -> Replay:
    """A library PolicyResult in the bench's shape (absolute stream weeks, the fields the figures read)."""
    out = Replay(res.policy.name, run_seconds=res.run_seconds, train_seconds=res.train_seconds)
    for w in res.weeks:
        week = first + w.week
        out.ap[week] = w.metric["estimate"]
        out.served[week] = w.served
        if w.status == "skipped":
            continue
        out.runs.append(
            {
                "week": week,
                "as_of": w.as_of,
                "status": w.status,
                "action": w.action,
                "decision": w.decision,
                "trigger": w.trigger,
                "codes": w.codes,
                "flagged": w.flagged,
                "trained": w.trained,
                "promoted": w.promoted,
                "version": w.version,
                "model": w.served,
                "comparison": w.comparison,
                "champion_ap": w.champion_metric,
                "candidate_ap": w.candidate_metric,
                "train_rows": w.train_rows,
                "training_window": w.training_window,
                "train_seconds": w.train_seconds,
                "step_seconds": w.step_seconds,
                "metric": w.evidence,
            }
        )
    return out


def followup(r: Replay, replayer: Any, weeks: range, horizon: int = 4) -> list[dict[str, Any]]:
    """Was each promotion an improvement? New and previous champion on the next ``horizon`` weeks' traffic."""
    out = []
    for run in r.runs[1:]:
        if not run["promoted"]:
            continue
        w = run["week"]
        new, previous = r.served[w], r.served.get(w - 1)
        ahead = [x for x in weeks if w <= x < w + horizon]
        new_ap = [replayer.week_metric(new, x - weeks[0])["estimate"] for x in ahead]
        old_ap = [replayer.week_metric(previous, x - weeks[0])["estimate"] for x in ahead]
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


def speed(seed: int, users: int = 37_000, runs: int = 26) -> None:
    """The issue's speed figure: ``runs`` weekly decisions of a ~1M-row history, never/weekly/drift, timed."""
    from driftline import replay as rp
    from driftline.contract import load_contract
    from driftline.settings import load_settings
    from driftline.store import Store

    cfg = Config()
    stream = simulator_stream("concept_drift", FIRST_RUN_WEEK + runs, users, seed, FIRST_RUN_WEEK + runs // 2)
    root = Path(tempfile.mkdtemp(prefix="driftline-bench-replay-speed-"))
    try:
        template = make_template(root, stream, cfg)
        s = load_settings(template / "driftline.yaml")
        c = load_contract(s.contract)
        store = Store.from_settings(s, c)
        print(f"{len(stream.traffic):,} logged rows over {stream.weeks} weeks; {runs} weekly decisions", flush=True)
        t = time.perf_counter()
        report = rp.replay(
            s,
            c,
            store,
            stream.start + pd.Timedelta(weeks=FIRST_RUN_WEEK),
            stream.start + pd.Timedelta(weeks=FIRST_RUN_WEEK + runs - 1),
            [rp.parse_policy(p) for p in ("never", "weekly", "drift")],
            progress=lambda line: print("  " + line, flush=True),
        )
        total = time.perf_counter() - t
        store.dispose()
        print(rp.render_text(report))
        print(f"\nreplay of {runs} weeks x 3 policies: {total:.0f} s (target <= 600 s on 2 cores)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
    ap.add_argument(
        "--speed",
        action="store_true",
        help="only the speed figure: 26 weekly decisions of a ~1M-row simulated history, three policies",
    )
    args = ap.parse_args()
    if args.speed:
        warnings.filterwarnings("ignore")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        speed(args.seed)
        return
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
            todo = [p for p in ("never", "weekly", "drift") if p not in reps]
            reps.update(replay_stream(stream, template, base, todo, range(FIRST_RUN_WEEK, last + 1)))
            a = analyse(stream, reps)
            results["streams"].append(a)
            print_stream(a)
        base = root / "stable"
        template = make_template(base, stable, cfg)
        todo = ["drift"] if previous is not None else ["weekly", "drift"]
        reps = replay_stream(stable, template, base, todo, range(FIRST_RUN_WEEK, stable.weeks))
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
