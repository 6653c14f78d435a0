"""Promotion gates: each gate's pass and fail case, and the paired comparison behind beat_champion."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from driftline.gates import Gate, evaluate_gates
from driftline.metrics import Interval, paired_difference
from driftline.settings import GateSettings

NAN = float("nan")
CAND = {"average_precision": 0.60, "roc_auc": 0.80}


def _gate(report, name: str) -> Gate:
    return next(g for g in report.gates if g.name == name)


def _iv(estimate: float, low: float, high: float) -> Interval:
    return Interval(estimate, low, high, 0.95, 1000)


def test_gate_order_and_no_champion() -> None:
    r = evaluate_gates(CAND, None, None, GateSettings())
    assert r.passed and [g.name for g in r.gates] == ["candidate_metric", "beat_champion"]
    assert _gate(r, "beat_champion").detail == "no champion yet" and r.comparison is None


@pytest.mark.parametrize(
    ("interval", "margin", "passed", "code"),
    [
        ((0.03, 0.01, 0.05), 0.0, True, "better"),
        ((0.03, 0.0, 0.05), 0.0, False, "tie"),  # a lower bound at the margin does not exceed it
        ((0.0, 0.0, 0.0), 0.0, False, "tie"),  # identical models: never promoted
        ((0.01, -0.02, 0.04), 0.0, False, "tie"),
        ((-0.03, -0.05, -0.01), 0.0, False, "worse_or_unproven"),
        ((0.03, 0.01, 0.05), 0.02, False, "worse_or_unproven"),
        ((0.05, 0.03, 0.07), 0.02, True, "better"),
    ],
)
def test_beat_champion_needs_the_lower_bound_above_the_margin(interval, margin, passed, code) -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.57}, _iv(*interval), GateSettings(margin=margin))
    g = _gate(r, "beat_champion")
    assert (g.passed, g.code, r.passed) == (passed, code, passed)
    assert (g.value, g.threshold) == (interval[1], margin)
    assert r.comparison["low"] == interval[1] and r.comparison["metric"] == "average_precision"


def test_detail_names_the_interval() -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.57}, _iv(0.03, 0.01, 0.05), GateSettings())
    assert _gate(r, "beat_champion").detail == (
        "candidate - champion average_precision = +0.0300 (95% interval +0.0100 … +0.0500); lower bound > margin 0"
    )


def test_undefined_metrics_fail() -> None:
    r = evaluate_gates({"average_precision": NAN}, None, None, GateSettings())
    assert not _gate(r, "candidate_metric").passed and not r.passed
    r = evaluate_gates({"average_precision": None}, None, None, GateSettings())
    assert not r.passed and [g.name for g in r.failed] == ["candidate_metric"]
    r = evaluate_gates(CAND, {"average_precision": NAN}, _iv(NAN, NAN, NAN), GateSettings())
    assert not _gate(r, "beat_champion").passed and _gate(r, "beat_champion").code == "undefined"
    r = evaluate_gates(CAND, {"average_precision": 0.5}, None, GateSettings())
    assert not _gate(r, "beat_champion").passed


def test_report_serialisation() -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.7}, _iv(-0.1, -0.12, -0.08), GateSettings())
    tags = r.to_tags()
    assert tags["gate.passed"] == "false"
    assert tags["gate.beat_champion"].startswith("fail: ") and tags["gate.candidate_metric"].startswith("pass: ")
    d = r.to_dict()
    assert d["passed"] is False and len(d["gates"]) == 2
    assert set(d["gates"][0]) == {"name", "passed", "detail", "code", "value", "threshold"}


# -- the paired comparison, on real scores ----------------------------------------------------
def _world(seed: int = 0, n: int = 3000):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    signal = y + rng.normal(0, 1.0, n)
    return rng, y, signal


def test_an_identical_model_never_passes() -> None:
    rng, y, signal = _world()
    diff = paired_difference("average_precision", y, signal, signal, rng, resamples=300)
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert not evaluate_gates({"average_precision": 0.5}, {"average_precision": 0.5}, diff, GateSettings()).passed


def test_a_clearly_better_model_passes_and_a_slightly_noisier_one_does_not() -> None:
    rng, y, signal = _world()
    better = y * 1.5 + rng.normal(0, 1.0, len(y))
    diff = paired_difference("average_precision", y, better, signal, rng, resamples=400)
    expected = average_precision_score(y, better) - average_precision_score(y, signal)
    assert diff.estimate == pytest.approx(expected, abs=1e-12) and diff.low > 0
    assert evaluate_gates({"average_precision": 0.6}, {"average_precision": 0.5}, diff, GateSettings()).passed
    noisier = signal + rng.normal(0, 0.05, len(y))  # the same model, a little noise: a tie
    tie = paired_difference("average_precision", y, noisier, signal, rng, resamples=400)
    assert tie.low <= 0 <= tie.high
    assert not evaluate_gates({"average_precision": 0.5}, {"average_precision": 0.5}, tie, GateSettings()).passed
