"""Promotion gates: each gate's pass and fail case."""

from __future__ import annotations

import pytest

from driftline.gates import Gate, evaluate_gates
from driftline.settings import GateSettings

NAN = float("nan")


def _gate(report, name: str) -> Gate:
    return next(g for g in report.gates if g.name == name)


def _settings(**kw: object) -> GateSettings:
    return GateSettings(**kw)


CAND = {"average_precision": 0.60, "roc_auc": 0.80}
BACKTEST = {"mean": 0.58, "std": 0.02}


def test_all_pass_and_gate_order() -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.55}, BACKTEST, _settings())
    assert r.passed
    assert [g.name for g in r.gates] == ["beat_champion", "within_backtest_spread", "validation", "skew"]
    assert r.failed == []


def test_beat_champion_no_champion_passes() -> None:
    g = _gate(evaluate_gates(CAND, None, None, _settings()), "beat_champion")
    assert g.passed and g.detail == "no champion yet; candidate average_precision=0.6000"


@pytest.mark.parametrize(
    ("champion", "margin", "passed"),
    [(0.55, 0.0, True), (0.60, 0.0, True), (0.61, 0.0, False), (0.55, 0.05, True), (0.56, 0.05, False)],
)
def test_beat_champion_margin(champion: float, margin: float, passed: bool) -> None:
    r = evaluate_gates(CAND, {"average_precision": champion}, None, _settings(margin=margin))
    assert _gate(r, "beat_champion").passed is passed
    assert r.passed is passed


def test_beat_champion_detail_and_primary_metric() -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.9, "roc_auc": 0.7}, None, _settings(primary_metric="roc_auc"))
    g = _gate(r, "beat_champion")
    assert g.passed and g.detail == "candidate roc_auc=0.8000 >= champion 0.7000 + margin 0"
    r = evaluate_gates(CAND, {"average_precision": 0.65}, None, _settings(margin=0.01))
    assert _gate(r, "beat_champion").detail == "candidate average_precision=0.6000 < champion 0.6500 + margin 0.01"


def test_undefined_metrics() -> None:
    r = evaluate_gates({"average_precision": NAN}, None, None, _settings())
    assert not _gate(r, "beat_champion").passed and not r.passed
    r = evaluate_gates(CAND, {"average_precision": NAN}, None, _settings())
    assert _gate(r, "beat_champion").passed and "champion average_precision is undefined" in r.gates[0].detail
    r = evaluate_gates({"average_precision": None}, None, BACKTEST, _settings())
    assert not _gate(r, "within_backtest_spread").passed


@pytest.mark.parametrize(
    ("sigmas", "passed"),
    [(2.0, True), (0.0, True), (1.0, True)],  # floor 0.54 / 0.58 / 0.56, candidate 0.60
)
def test_backtest_spread_pass(sigmas: float, passed: bool) -> None:
    r = evaluate_gates(CAND, None, BACKTEST, _settings(backtest_sigmas=sigmas))
    assert _gate(r, "within_backtest_spread").passed is passed


def test_backtest_spread_fail_with_detail() -> None:
    r = evaluate_gates({"average_precision": 0.50}, None, BACKTEST, _settings(backtest_sigmas=2.0))
    g = _gate(r, "within_backtest_spread")
    assert not g.passed and not r.passed
    # floor = 0.58 - 2 * 0.02 = 0.54
    assert g.detail == "candidate average_precision=0.5000 < backtest mean 0.5800 - 2*std 0.0200 = 0.5400"


@pytest.mark.parametrize("bt", [None, {"mean": 0.5, "std": NAN}, {"mean": NAN, "std": NAN}])
def test_backtest_spread_skipped_when_undefined(bt: dict | None) -> None:
    g = _gate(evaluate_gates({"average_precision": 0.1}, None, bt, _settings()), "within_backtest_spread")
    assert g.passed and g.detail.startswith("skipped")


def test_validation_gate() -> None:
    assert _gate(evaluate_gates(CAND, None, None, _settings()), "validation").passed
    r = evaluate_gates(CAND, None, None, _settings(), validation_blocked=True)
    assert not _gate(r, "validation").passed and not r.passed
    assert [g.name for g in r.failed] == ["validation"]


def test_skew_gate() -> None:
    assert _gate(evaluate_gates(CAND, None, None, _settings()), "skew").detail == "no training-serving skew"
    r = evaluate_gates(CAND, None, None, _settings(), skew_reasons=["country: 12% unseen values", "plan: dtype"])
    g = _gate(r, "skew")
    assert not g.passed and not r.passed
    assert g.detail == "training-serving skew: country: 12% unseen values; plan: dtype"


def test_report_serialisation() -> None:
    r = evaluate_gates(CAND, {"average_precision": 0.7}, BACKTEST, _settings(), skew_reasons=["x"])
    tags = r.to_tags()
    assert tags["gate.passed"] == "false"
    assert tags["gate.beat_champion"].startswith("fail: ")
    assert tags["gate.within_backtest_spread"].startswith("pass: ")
    assert tags["gate.skew"] == "fail: training-serving skew: x"
    d = r.to_dict()
    assert d["passed"] is False and len(d["gates"]) == 4 and set(d["gates"][0]) == {"name", "passed", "detail"}
