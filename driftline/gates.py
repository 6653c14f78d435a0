"""Promotion gates: what a candidate must show before it may become the champion.

Pure functions over metric dicts (from :func:`driftline.metrics.classification_metrics`, both
models scored on the same refreshed test set) and a backtest summary (from
:func:`driftline.metrics.backtest`). The flow records every gate's result as tags.

Gates, in order:

* ``beat_champion`` — candidate >= champion + margin on the primary metric (ties pass when the
  margin is 0; comparisons allow :data:`TOLERANCE` of float rounding). Passes when there is no
  champion or the champion's metric is undefined; fails when the candidate's metric is
  undefined (NaN).
* ``within_backtest_spread`` — candidate >= backtest mean - backtest_sigmas * std. Passes
  (noted as skipped) when there is no backtest or its spread is undefined (fewer than two
  usable folds).
* ``validation`` — fails when data validation blocked the run.
* ``skew`` — fails when the training–serving skew check reported any reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from driftline.settings import GateSettings

# Comparisons allow this much float rounding, so 0.60 vs 0.55 + 0.05 counts as reaching the bar.
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Gate:
    """One gate's verdict and a one-line explanation."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    """All gates; ``passed`` is true only when every gate passed."""

    passed: bool
    gates: list[Gate] = field(default_factory=list)

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "gates": [asdict(g) for g in self.gates]}

    def to_tags(self, prefix: str = "gate.") -> dict[str, str]:
        """``{prefix}<name>: "pass|fail: detail"`` per gate plus ``{prefix}passed``; for MLflow tags."""
        tags = {f"{prefix}{g.name}": f"{'pass' if g.passed else 'fail'}: {g.detail}" for g in self.gates}
        tags[f"{prefix}passed"] = str(self.passed).lower()
        return tags


def _value(metrics: Mapping[str, Any] | None, name: str) -> float:
    if metrics is None:
        return math.nan
    v = metrics.get(name)
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def beat_champion_gate(
    candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, metric: str, margin: float
) -> Gate:
    """Candidate must reach the champion's metric plus ``margin`` on the same test set."""
    cand = _value(candidate, metric)
    if math.isnan(cand):
        return Gate("beat_champion", False, f"candidate {metric} is undefined on the test set")
    if champion is None:
        return Gate("beat_champion", True, f"no champion yet; candidate {metric}={_fmt(cand)}")
    champ = _value(champion, metric)
    if math.isnan(champ):
        return Gate("beat_champion", True, f"champion {metric} is undefined; candidate {metric}={_fmt(cand)}")
    need = champ + margin
    ok = cand >= need - TOLERANCE
    return Gate(
        "beat_champion",
        ok,
        f"candidate {metric}={_fmt(cand)} {'>=' if ok else '<'} champion {_fmt(champ)} + margin {margin:g}",
    )


def backtest_spread_gate(
    candidate: Mapping[str, Any], backtest: Mapping[str, Any] | None, metric: str, sigmas: float
) -> Gate:
    """Candidate must not fall below the backtest mean minus ``sigmas`` standard deviations."""
    cand = _value(candidate, metric)
    if backtest is None:
        return Gate("within_backtest_spread", True, "skipped: no backtest")
    mean, std = _value(backtest, "mean"), _value(backtest, "std")
    if math.isnan(mean) or math.isnan(std):
        return Gate("within_backtest_spread", True, "skipped: backtest spread undefined (fewer than 2 usable folds)")
    if math.isnan(cand):
        return Gate("within_backtest_spread", False, f"candidate {metric} is undefined on the test set")
    floor = mean - sigmas * std
    ok = cand >= floor - TOLERANCE
    return Gate(
        "within_backtest_spread",
        ok,
        f"candidate {metric}={_fmt(cand)} {'>=' if ok else '<'} backtest mean {_fmt(mean)} - {sigmas:g}*std "
        f"{_fmt(std)} = {_fmt(floor)}",
    )


def evaluate_gates(
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    backtest: Mapping[str, Any] | None,
    gate_settings: GateSettings,
    validation_blocked: bool = False,
    skew_reasons: Sequence[str] = (),
) -> GateReport:
    """Run every gate (see the module docstring) and report each verdict."""
    metric = gate_settings.primary_metric
    gates = [
        beat_champion_gate(candidate, champion, metric, gate_settings.margin),
        backtest_spread_gate(candidate, backtest, metric, gate_settings.backtest_sigmas),
        Gate(
            "validation",
            not validation_blocked,
            "data validation blocked the run" if validation_blocked else "data validation passed",
        ),
        Gate(
            "skew",
            not skew_reasons,
            ("training-serving skew: " + "; ".join(skew_reasons)) if skew_reasons else "no training-serving skew",
        ),
    ]
    return GateReport(passed=all(g.passed for g in gates), gates=gates)
