"""Promotion gates: what a candidate must show before it may become the champion.

Pure functions. Both models are scored on the same refreshed test set (weighted to estimate
production); the comparison is paired — one bootstrap over the rows scores both models on each
resample — so its interval is of the difference itself
(:func:`driftline.metrics.paired_difference`).

Gates, each of which can fail:

* ``candidate_metric`` — the candidate's primary metric is defined on the test set (a test set
  without positives has no average precision: nothing can be judged).
* ``beat_champion`` — the lower bound of the paired interval of candidate - champion exceeds
  ``margin``. A tie (identical models, or a difference the interval cannot tell from zero)
  never passes. Passes when there is no champion yet; fails when the comparison is undefined.
* ``edge_slices`` and ``flip_rate`` — the edge-case suite mined from the logs
  (:mod:`driftline.edgecases`): not worse than the champion beyond a margin on any edge slice,
  and predictions stable under small nudges. Pass when there is no champion to compare with.

Not gates any more, and why: the backtest (rolling-origin folds over raw windows) is recorded
with the version as information, but it scores another population than the production-mirror
test set and, under drift, older easier weeks — it rejected candidates that beat the champion on
the same rows. Validation and skew block the run before any training, so a registered candidate
has always passed them; the verdict records that, not a gate that could never fail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from driftline.metrics import Interval
from driftline.settings import GateSettings


@dataclass(frozen=True)
class Gate:
    """One gate's verdict, its reason code and numbers, and a one-line explanation."""

    name: str
    passed: bool
    detail: str
    code: str = ""
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class GateReport:
    """All gates; ``passed`` is true only when every gate passed."""

    passed: bool
    gates: list[Gate] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the edge-case results, for gates.json

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        out = {"passed": self.passed, "gates": [asdict(g) for g in self.gates], "comparison": self.comparison}
        return {**out, **self.details}

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


def candidate_metric_gate(candidate: Mapping[str, Any], metric: str) -> Gate:
    """The candidate's primary metric must be defined on the test set."""
    cand = _value(candidate, metric)
    if math.isnan(cand):
        return Gate("candidate_metric", False, f"candidate {metric} is undefined on the test set", "undefined")
    return Gate("candidate_metric", True, f"candidate {metric}={cand:.4f}", "defined", cand)


def beat_champion_gate(
    comparison: Interval | None, champion: Mapping[str, Any] | None, metric: str, margin: float
) -> Gate:
    """The paired interval of candidate - champion must lie above ``margin`` (strictly)."""
    if champion is None:
        return Gate("beat_champion", True, "no champion yet", "no_champion")
    if comparison is None or not math.isfinite(comparison.estimate) or not math.isfinite(comparison.low):
        return Gate(
            "beat_champion",
            False,
            f"the {metric} difference to the champion is undefined on this test set",
            "undefined",
        )
    ok = comparison.low > margin
    return Gate(
        "beat_champion",
        ok,
        f"candidate - champion {metric} = {comparison.text(signed=True)}; lower bound "
        f"{'>' if ok else '≤'} margin {margin:g}",
        "better" if ok else ("tie" if comparison.low <= 0 <= comparison.high else "worse_or_unproven"),
        comparison.low,
        margin,
    )


def evaluate_gates(
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    comparison: Interval | None,
    gate_settings: GateSettings,
    extra: Sequence[Gate] = (),
    details: Mapping[str, Any] | None = None,
) -> GateReport:
    """Run every gate (see the module docstring), add ``extra`` ones, and report each verdict."""
    metric = gate_settings.primary_metric
    gates = [candidate_metric_gate(candidate, metric)]
    gates.append(beat_champion_gate(comparison, champion, metric, gate_settings.margin))
    gates.extend(extra)
    return GateReport(
        passed=all(g.passed for g in gates),
        gates=gates,
        comparison=None if comparison is None else {"metric": metric, **comparison.to_dict()},
        details=dict(details or {}),
    )
