"""Feedback pool on the simulator's ``long_tail`` scenario, and the edge-case suite's build time.

**Feedback.** For each seed: a champion is trained on weeks 0-7; its errors on weeks 8-21
(scored as it would have served them) enter the feedback pool through
``driftline.feedback.collect``; two candidates are trained on weeks 14-21 — one on the window
alone, one on the window plus the pool (``driftline.feedback.training_rows``: cap 20%, rows
older than the window added, in-window errors weighted by ``training.feedback_weight``). Both
are scored on weeks 22-29 (rows neither saw): average precision on the whole test set and on
the rare segments (the tail countries and the rare enterprise plan), and the Brier score on
those. The ratio lines compare with / without.

**Edge cases.** ``driftline.edgecases.build_suite`` on a 1M-row labelled log (the simulator's
rows repeated with jitter), timed as a plain call, next to a plain numpy pass over the same
rows (the per-row loss, then per key feature its bin or value codes and three ``bincount`` sums:
the slice statistics and nothing else), the floor any suite builder pays.

    .venv/bin/python bench/bench_feedback.py [--seeds 3] [--weights 1,2,3] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from driftline.feedback import FeedbackStore, collect, training_rows
from driftline.labels import join_labels
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store
from driftline.training import score, train

START = pd.Timestamp("2026-01-05")
RARE_COUNTRIES = ("IS", "LU", "MT", "EE")


def _weeks(frame: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    w = ((frame["event_time"] - START) // pd.Timedelta(weeks=1)).astype(int)
    return frame[(w >= a) & (w < b)].reset_index(drop=True)


class _Split:
    def __init__(self, test_start: pd.Timestamp) -> None:
        self.test_start = test_start


def one_seed(seed: int, weights: list[float], users: int) -> dict:
    sim = simulate(weeks=30, users=users, scenarios="long_tail", seed=seed, start=START.date())
    c = sim.contract
    labelled = join_labels(sim.traffic, sim.outcomes, c, START + pd.Timedelta(weeks=31), 7)
    out: dict = {"seed": seed, "rows": len(labelled)}
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(None, home=tmp, training={"seed": seed})
        store = Store(f"sqlite:///{tmp}/store.db", c).create()
        store.append_predictions(sim.traffic)
        store.append_outcomes(sim.outcomes)
        champion = train(_weeks(labelled, 0, 8), c, s.training).pipeline
        served = _weeks(labelled, 8, 22)
        fb = FeedbackStore(store)
        got = collect(fb, served, score(champion, served, c), served.head(0), np.zeros(0), s, model_version="1")
        out["pool"] = got.pool_added
        base = _weeks(labelled, 14, 22)
        test = _weeks(labelled, 22, 30)
        rare = (test["country"].isin(RARE_COUNTRIES) | (test["plan"] == "enterprise")).to_numpy()
        y = test["churned"].to_numpy()
        out["test_rows"], out["rare_rows"], out["rare_positives"] = len(test), int(rare.sum()), int(y[rare].sum())

        def judge(model) -> dict:
            p = score(model, test, c)
            return {
                "ap": round(float(average_precision_score(y, p)), 5),
                "rare_ap": round(float(average_precision_score(y[rare], p[rare])), 5),
                "rare_brier": round(float(np.mean((p[rare] - y[rare]) ** 2)), 5),
            }

        out["without"] = judge(train(base, c, s.training).pipeline)
        for w in weights:
            sw = load_settings(None, home=tmp, training={"seed": seed, "feedback_weight": w})
            fs = training_rows(fb, base, _Split(START + pd.Timedelta(weeks=22)), sw, np.random.default_rng([seed, 22]))
            out[f"with_w{w:g}"] = {**judge(train(fs.frame, c, sw.training).pipeline), "used": fs.summary["used"],
                                   "added": fs.summary["added"]}  # fmt: skip
        store.dispose()
    return out


def edge_speed(rows: int, seed: int) -> dict:
    from driftline.edgecases import build_suite

    sim = simulate(weeks=12, users=20000, scenarios="long_tail", seed=seed, start=START.date())
    c = sim.contract
    lab = join_labels(sim.traffic, sim.outcomes, c, START + pd.Timedelta(weeks=13), 7)
    rng = np.random.default_rng(seed)
    reps = int(np.ceil(rows / len(lab)))
    frame = pd.concat([lab] * reps, ignore_index=True).head(rows)
    for n in c.numeric:
        frame[n] = frame[n] * (1 + 0.01 * rng.standard_normal(len(frame)))
    y = frame["churned"].to_numpy()
    scores = np.clip(0.3 + 0.4 * y + 0.2 * rng.standard_normal(len(frame)), 0, 1)
    s = load_settings(None)
    t0 = time.perf_counter()
    suite = build_suite(frame, y, scores, c, s, {n: set(c.features[n].vocabulary or []) for n in c.categorical})
    t_suite = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss = (scores - y) ** 2
    for n in c.key_features or c.feature_names:  # the slices the suite tries: one bincount pass each
        if n in c.numeric:
            x = frame[n].to_numpy(dtype=float)
            codes = np.searchsorted(np.nanquantile(x, np.linspace(0, 1, 6)[1:-1]), x)
        else:
            codes = np.unique(frame[n].astype(str).to_numpy(), return_inverse=True)[1]
        np.bincount(codes, weights=loss), np.bincount(codes, weights=loss**2), np.bincount(codes)
    t_plain = time.perf_counter() - t0
    return {"rows": len(frame), "slices": len(suite.slices), "suite_s": round(t_suite, 2),
            "plain_numpy_pass_s": round(t_plain, 2), "ratio": round(t_suite / t_plain, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--weights", default="1,2,3")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-feedback", action="store_true")
    a = ap.parse_args()
    weights = [float(w) for w in a.weights.split(",")]
    result: dict = {"feedback": [], "edge": None}
    if not a.skip_feedback:
        for seed in range(a.seeds):
            r = one_seed(seed, weights, a.users)
            result["feedback"].append(r)
            print(json.dumps(r))
        for w in weights:
            k = f"with_w{w:g}"
            rare = np.mean([r[k]["rare_ap"] - r["without"]["rare_ap"] for r in result["feedback"]])
            brier = np.mean([r[k]["rare_brier"] - r["without"]["rare_brier"] for r in result["feedback"]])
            whole = np.mean([r[k]["ap"] / r["without"]["ap"] - 1 for r in result["feedback"]])
            print(f"feedback_weight {w:g}: rare-segment AP {rare:+.4f}, rare Brier {brier:+.4f}, "
                  f"whole-test AP {whole:+.2%} (mean over {a.seeds} seeds; with - without)")  # fmt: skip
    result["edge"] = edge_speed(a.rows, 0)
    print(json.dumps(result["edge"]))
    Path("/tmp/driftline-bench-feedback.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
