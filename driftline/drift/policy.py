"""Trigger policy: a pure function from a drift report (and performance) to none / investigate / retrain.

Rules, all thresholds from :class:`driftline.settings.DriftSettings` (``driftline.yaml``):

- **retrain** when a ``key`` feature is at ``alert``; when the model score is at ``alert``;
  when at least ``warn_features_for_retrain`` features are at ``warn`` or above; or when the
  primary metric dropped by at least ``metric_drop_retrain`` (relative).
- **investigate** when any feature or the score is at ``warn`` or above; when the primary
  metric dropped by at least ``metric_drop_investigate``; and, if ``segments_investigate`` is
  on, when a segment has a feature at ``alert``.
- otherwise **none**. Features with ``insufficient_data`` never trigger; if no feature had
  enough rows, the reason says so.

Every reason names the feature (or metric), its value and the threshold it crossed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from driftline.settings import DriftSettings

if TYPE_CHECKING:
    from driftline.drift.compare import DriftReport, FeatureDrift

Action = Literal["none", "investigate", "retrain"]
_TOL = 1e-9  # a drop of exactly 10% computes as 0.0999999...; count it as 10%


@dataclass
class Decision:
    """What to do about a window, and why."""

    action: Action
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reasons": list(self.reasons)}


def _describe(f: FeatureDrift) -> str:
    level = f.band.alert if f.severity == "alert" else f.band.warn
    op = ">" if f.severity == "alert" else "≥"
    extra = ""
    if f.unseen_values:
        top = ", ".join(f"{k} ({v})" for k, v in list(f.unseen_values.items())[:3])
        extra = f"; unseen values: {top}"
    return f"'{f.name}' at {f.severity} (PSI {f.psi:.3f} {op} {f.severity} threshold {level:.3f}{extra})"


def _metric_drop(performance: dict[str, Any] | None, metric: str) -> tuple[float, float, float] | None:
    if not performance:
        return None
    ch = performance.get("change", {}).get(metric)
    if not ch or ch.get("relative") is None:
        return None
    return -float(ch["relative"]), float(ch["reference"]), float(ch["current"])


def decide(
    report: DriftReport,
    settings: DriftSettings,
    performance: dict[str, Any] | None = None,
    primary_metric: str = "average_precision",
) -> Decision:
    """Apply the trigger policy (module docstring) to a report; ``performance`` overrides the report's."""
    retrain: list[str] = []
    investigate: list[str] = []
    feats = list(report.by_severity())
    flagged = [f for f in feats if f.severity in ("warn", "alert")]
    for f in flagged:
        if f.severity == "alert" and f.key:
            retrain.append(f"key feature {_describe(f)}")
    if len(flagged) >= settings.warn_features_for_retrain:
        names = ", ".join(f"'{f.name}' ({f.psi:.3f})" for f in flagged)
        retrain.append(
            f"{len(flagged)} features at warn or above (retrain at ≥ {settings.warn_features_for_retrain}): {names}"
        )
    for f in flagged:
        if not (f.severity == "alert" and f.key):
            investigate.append(f"feature {_describe(f)}")
    s = report.score
    if s is not None and s.severity == "alert":
        retrain.append(f"model score {_describe(s)}")
    elif s is not None and s.severity == "warn":
        investigate.append(f"model score {_describe(s)}")

    perf = performance if performance is not None else report.performance
    drop = _metric_drop(perf, primary_metric)
    if drop is not None:
        rel, ref, cur = drop
        text = f"{primary_metric} dropped {rel:.1%} relative ({ref:.4f} → {cur:.4f})"
        if rel >= settings.metric_drop_retrain - _TOL:
            retrain.append(f"{text}; retrain at ≥ {settings.metric_drop_retrain:.0%}")
        elif rel >= settings.metric_drop_investigate - _TOL:
            investigate.append(f"{text}; investigate at ≥ {settings.metric_drop_investigate:.0%}")

    if settings.segments_investigate and report.segments:
        for value, seg in report.segments.get("values", {}).items():
            hot = [n for n, d in seg["features"].items() if d["severity"] == "alert"]
            if hot:
                investigate.append(
                    f"segment {report.segments['column']}={value} has feature(s) at alert: {', '.join(hot)}"
                )

    if retrain:
        return Decision("retrain", retrain + investigate)
    if investigate:
        return Decision("investigate", investigate)
    if feats and all(f.severity == "insufficient_data" for f in feats):
        return Decision(
            "none",
            [f"insufficient data: the window has {report.n_current} rows (severity needs ≥ {settings.min_rows})"],
        )
    return Decision("none", ["no feature, score or metric crossed a threshold"])
