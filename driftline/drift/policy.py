"""Trigger policy: a pure function from a drift report (and performance) to none / investigate / retrain.

Rules, all thresholds from :class:`driftline.settings.DriftSettings` (``driftline.yaml``):

- **retrain** when a ``key`` feature is at ``alert``; when the model score is at ``alert``;
  when at least ``warn_features_for_retrain`` features are at ``warn`` or above; or when the
  primary metric dropped by at least ``metric_drop_retrain`` (relative) *and* the drop is
  outside the metric's own uncertainty (its one-sided bootstrap upper bound on the test set, at
  ``metric_drop_confidence``, is below the reference).
- **investigate** when any feature or the score is at ``warn`` or above; when the primary
  metric dropped by at least ``metric_drop_investigate`` outside its uncertainty (or by the
  retrain band but within it); and, if ``segments_investigate`` is on, when a segment has a
  feature at ``alert``.
- The metric trigger needs ``min_labelled_rows`` labelled test rows with
  ``min_labelled_positives`` positives; below that it says so and does not fire.
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


DRIFT_CODES = frozenset({"key_feature_alert", "features_at_warn", "score_alert"})
"""Retrain reasons that mean the inputs or scores moved (trigger ``drift``); the rest are ``performance``."""


@dataclass(frozen=True)
class Reason:
    """One structured reason: what (code), where (feature or metric), the number, the bar, the level.

    ``text`` is rendered from the fields when the reason is made; code reads the fields, never the text.
    """

    code: str
    level: Action
    text: str
    feature: str | None = None
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level,
            "feature": self.feature,
            "value": self.value,
            "threshold": self.threshold,
            "text": self.text,
        }


@dataclass
class Decision:
    """What to do about a window, and why: ``codes`` are the structured reasons, ``reasons`` their text."""

    action: Action
    reasons: list[str] = field(default_factory=list)
    codes: list[Reason] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, action: Action, codes: list[Reason]) -> Decision:
        return cls(action, [r.text for r in codes], list(codes))

    @property
    def cause(self) -> str | None:
        """``drift`` when a retrain reason is about inputs or scores, ``performance`` otherwise."""
        if self.action != "retrain":
            return None
        return "drift" if any(r.code in DRIFT_CODES for r in self.codes) else "performance"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reasons": list(self.reasons), "codes": [r.to_dict() for r in self.codes]}


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


def _base_rate_shift(performance: dict[str, Any]) -> tuple[float, float] | None:
    """(reference, current) positive rate when it moved by 10% or more (relative), else None."""
    ch = (performance.get("change") or {}).get("positive_rate") or {}
    p0, p1 = ch.get("reference"), ch.get("current")
    if p0 is None or p1 is None or not (0 < p0 < 1 and 0 < p1 < 1):
        return None
    return (float(p0), float(p1)) if abs(p1 - p0) / p0 >= 0.1 else None


def metric_decision(
    performance: dict[str, Any] | None, settings: DriftSettings, metric: str
) -> tuple[Action, list[Reason]]:
    """What the primary metric alone says: its drop, judged against its own uncertainty and sample."""
    drop = _metric_drop(performance, metric)
    if drop is None or performance is None:
        return "none", []
    labelled = performance.get("labelled") or {}
    if labelled and not labelled.get("sufficient", True):
        text = (
            f"metric trigger not evaluated: {labelled.get('n')} labelled test rows with {labelled.get('positives')} "
            f"positives (needs ≥ {labelled.get('min_rows')} and ≥ {labelled.get('min_positives')})"
        )
        return "none", [Reason("metric_insufficient_labels", "none", text, metric, labelled.get("n"))]
    rel, ref, cur = drop
    interval = performance.get("interval") or {}
    margin = interval.get("significance_margin")
    label = metric
    shift = _base_rate_shift(performance) if metric == "average_precision" else None
    if shift is not None:
        # AP rises and falls with the share of positives; compare the lift over that share instead.
        p0, p1 = shift
        ref, cur = (ref - p0) / (1 - p0), (cur - p1) / (1 - p1)
        if ref <= 0:
            return "none", []
        rel = (ref - cur) / ref
        margin = None if margin is None else margin / (1 - p1)
        label = f"{metric} (lift over the positive rate {p0:.3f} → {p1:.3f})"
    if margin is not None:
        significant = ref - cur > margin
        span = f"; the drop must exceed {margin:.4f} given both measurements' uncertainty"
    else:
        high = interval.get("high")
        significant = high is None or high < ref
        span = "" if high is None else f"; {interval.get('upper_confidence', 0.9):.0%} upper bound {high:.4f}"
    text = f"{label} dropped {rel:.1%} relative ({ref:.4f} → {cur:.4f}{span})"
    if rel >= settings.metric_drop_retrain - _TOL:
        if significant:
            band = settings.metric_drop_retrain
            return "retrain", [Reason("metric_drop", "retrain", f"{text}; retrain at ≥ {band:.0%}", metric, rel, band)]
        return "investigate", [
            Reason(
                "metric_drop_within_noise",
                "investigate",
                f"{text}; at the retrain band but within the metric's uncertainty",
                metric,
                rel,
                settings.metric_drop_retrain,
            )
        ]
    if rel >= settings.metric_drop_investigate - _TOL and significant:
        band = settings.metric_drop_investigate
        return "investigate", [
            Reason("metric_drop", "investigate", f"{text}; investigate at ≥ {band:.0%}", metric, rel, band)
        ]
    return "none", []


def decide(
    report: DriftReport,
    settings: DriftSettings,
    performance: dict[str, Any] | None = None,
    primary_metric: str = "average_precision",
) -> Decision:
    """Apply the trigger policy (module docstring) to a report; ``performance`` overrides the report's."""
    retrain: list[Reason] = []
    investigate: list[Reason] = []
    feats = list(report.by_severity())
    flagged = [f for f in feats if f.severity in ("warn", "alert")]

    def bar(f: FeatureDrift) -> float:
        return f.band.alert if f.severity == "alert" else f.band.warn

    for f in flagged:
        if f.severity == "alert" and f.key:
            retrain.append(Reason("key_feature_alert", "retrain", f"key feature {_describe(f)}", f.name, f.psi, bar(f)))
    if len(flagged) >= settings.warn_features_for_retrain:
        names = ", ".join(f"'{f.name}' ({f.psi:.3f})" for f in flagged)
        n, need = len(flagged), settings.warn_features_for_retrain
        text = f"{n} features at warn or above (retrain at ≥ {need}): {names}"
        retrain.append(Reason("features_at_warn", "retrain", text, None, float(n), float(need)))
    for f in flagged:
        if not (f.severity == "alert" and f.key):
            investigate.append(
                Reason(f"feature_{f.severity}", "investigate", f"feature {_describe(f)}", f.name, f.psi, bar(f))
            )
    s = report.score
    if s is not None and s.severity == "alert":
        retrain.append(Reason("score_alert", "retrain", f"model score {_describe(s)}", s.name, s.psi, bar(s)))
    elif s is not None and s.severity == "warn":
        investigate.append(Reason("score_warn", "investigate", f"model score {_describe(s)}", s.name, s.psi, bar(s)))

    perf = performance if performance is not None else report.performance
    level, metric_reasons = metric_decision(perf, settings, primary_metric)
    if level == "retrain":
        retrain += metric_reasons
    elif level == "investigate":
        investigate += metric_reasons
    notes = metric_reasons if level == "none" else []

    if settings.segments_investigate and report.segments:
        for value, seg in report.segments.get("values", {}).items():
            hot = [n for n, d in seg["features"].items() if d["severity"] == "alert"]
            if hot:
                text = f"segment {report.segments['column']}={value} has feature(s) at alert: {', '.join(hot)}"
                investigate.append(Reason("segment_alert", "investigate", text, ",".join(hot)))

    if retrain:
        return Decision.of("retrain", retrain + investigate)
    if investigate:
        return Decision.of("investigate", investigate)
    if feats and all(f.severity == "insufficient_data" for f in feats):
        text = f"insufficient data: the window has {report.n_current} rows (severity needs ≥ {settings.min_rows})"
        return Decision.of(
            "none",
            [Reason("insufficient_data", "none", text, None, float(report.n_current), settings.min_rows), *notes],
        )
    return Decision.of("none", [Reason("stable", "none", "no feature, score or metric crossed a threshold"), *notes])
