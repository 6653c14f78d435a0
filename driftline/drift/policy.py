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
- **retrain** also when the metric's shortfall *accumulates*: each week's deficit of the
  champion against its reference, in units of the combined standard error
  ``d = (ref - cur) / sqrt(se_ref² + se_now²)``, feeds a one-sided CUSUM
  ``S = max(0, S_prev + d - metric_cusum_slack)``; at ``S ≥ metric_cusum_threshold`` the
  policy retrains (``metric_cusum``). A slow ramp that is never significant in one week adds
  up; noise (mean deficit 0) drifts back to 0. ``S_prev`` comes from the decision log and
  starts at 0 for a new champion and after a retrain week (the alarm was answered). When the
  CUSUM can be evaluated, a single week at the retrain band retrains on its own only with a
  shortfall ≥ ``metric_drop_single_week_se`` standard errors, else it investigates
  (:func:`performance_decision`).
- **retrain** when the champion is no longer calibrated in the large: the labelled positive
  rate differs from its mean score by at least ``calibration_gap`` (relative) and by
  ``calibration_z`` standard errors (``calibration_gap``) — a base-rate change that average
  precision, which rises with the share of positives, can hide.
- The metric trigger needs ``min_labelled_rows`` labelled test rows with
  ``min_labelled_positives`` positives; below that it says so and does not fire (the CUSUM
  carries its value over unchanged).
- otherwise **none**. Features with ``insufficient_data`` never trigger; if no feature had
  enough rows, the reason says so.

Every reason names the feature (or metric), its value and the threshold it crossed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from driftline.settings import DriftSettings

if TYPE_CHECKING:
    from driftline.drift.compare import DriftReport, FeatureDrift

Action = Literal["none", "investigate", "retrain"]
_TOL = 1e-9  # a drop of exactly 10% computes as 0.0999999...; count it as 10%


DRIFT_CODES = frozenset({"key_feature_alert", "features_at_warn", "score_alert"})
"""Retrain reasons that mean the inputs or scores moved (trigger ``drift``); the rest are ``performance``."""

CUSUM = "metric_cusum"
"""The decision-state key (and reason code) of the metric CUSUM, kept in the decision log."""


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
    state: dict[str, float] = field(default_factory=dict, compare=False)  # carried to next week (CUSUM)

    @classmethod
    def of(cls, action: Action, codes: list[Reason], state: dict[str, float] | None = None) -> Decision:
        return cls(action, [r.text for r in codes], list(codes), dict(state or {}))

    @property
    def cause(self) -> str | None:
        """``drift`` when a retrain reason is about inputs or scores, ``performance`` otherwise."""
        if self.action != "retrain":
            return None
        return "drift" if any(r.code in DRIFT_CODES for r in self.codes) else "performance"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "codes": [r.to_dict() for r in self.codes],
            "state": dict(self.state),
        }


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


@dataclass(frozen=True)
class MetricGap:
    """The champion's metric now against its reference, on the scale the policy judges it.

    ``reference``/``current`` are the metric itself, or for average precision after the
    positive rate moved ≥ 10 %, its lift over that rate ((AP - π)/(1 - π)). ``se`` is the
    combined standard error of ``reference - current`` (√(se_ref² + se_now²), on the same
    scale), ``None`` when either measurement's error is unknown.
    """

    metric: str
    label: str
    reference: float
    current: float
    relative: float
    se: float | None = None
    margin: float | None = None  # z·se at metric_drop_confidence (the single-week bar)
    high: float | None = None  # one-sided upper bound of the current value, when no margin

    @property
    def deficit(self) -> float | None:
        """``(reference - current) / se``: the week's shortfall in standard errors (None without se)."""
        if self.se is None or not self.se > 0:
            return None
        return (self.reference - self.current) / self.se


def metric_gap(performance: dict[str, Any] | None, metric: str) -> MetricGap | None:
    """The gap the metric rules judge, or None when there is nothing to judge (no reference)."""
    drop = _metric_drop(performance, metric)
    if drop is None or performance is None:
        return None
    rel, ref, cur = drop
    interval = performance.get("interval") or {}
    margin = interval.get("significance_margin")
    se_now, se_ref = interval.get("se"), interval.get("reference_se")
    se = math.hypot(float(se_now), float(se_ref)) if se_now is not None and se_ref is not None else None
    label = metric
    shift = _base_rate_shift(performance) if metric == "average_precision" else None
    if shift is not None:
        # AP rises and falls with the share of positives; compare the lift over that share instead.
        p0, p1 = shift
        ref, cur = (ref - p0) / (1 - p0), (cur - p1) / (1 - p1)
        if ref <= 0:
            return None
        rel = (ref - cur) / ref
        margin = None if margin is None else margin / (1 - p1)
        se = None if se is None else se / (1 - p1)
        label = f"{metric} (lift over the positive rate {p0:.3f} → {p1:.3f})"
    high = interval.get("high")
    return MetricGap(metric, label, ref, cur, rel, se, margin, None if high is None else float(high))


def _insufficient(performance: dict[str, Any] | None, metric: str) -> Reason | None:
    labelled = (performance or {}).get("labelled") or {}
    if not labelled or labelled.get("sufficient", True):
        return None
    text = (
        f"metric trigger not evaluated: {labelled.get('n')} labelled test rows with {labelled.get('positives')} "
        f"positives (needs ≥ {labelled.get('min_rows')} and ≥ {labelled.get('min_positives')})"
    )
    return Reason("metric_insufficient_labels", "none", text, metric, labelled.get("n"))


def metric_decision(
    performance: dict[str, Any] | None, settings: DriftSettings, metric: str
) -> tuple[Action, list[Reason]]:
    """What the primary metric alone says this week: its drop, judged against its own uncertainty and sample."""
    gap = metric_gap(performance, metric)
    if gap is None:
        return "none", []
    short = _insufficient(performance, metric)
    if short is not None:
        return "none", [short]
    rel, ref, cur, margin = gap.relative, gap.reference, gap.current, gap.margin
    if margin is not None:
        significant = ref - cur > margin
        span = f"; the drop must exceed {margin:.4f} given both measurements' uncertainty"
    else:
        high = gap.high
        significant = high is None or high < ref
        conf = ((performance or {}).get("interval") or {}).get("upper_confidence", 0.9)
        span = "" if high is None else f"; {conf:.0%} upper bound {high:.4f}"
    text = f"{gap.label} dropped {rel:.1%} relative ({ref:.4f} → {cur:.4f}{span})"
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


def cusum_step(previous: float, deficit: float, slack: float) -> float:
    """One step of a one-sided (upper) CUSUM: ``max(0, previous + deficit - slack)``.

    ``deficit`` is the week's shortfall in standard errors; ``slack`` (k) is the shortfall per
    week that is tolerated as noise. Never negative; a run of deficits below the slack drains it.
    """
    return max(0.0, float(previous) + float(deficit) - float(slack))


def cusum_decision(
    performance: dict[str, Any] | None, settings: DriftSettings, metric: str, previous: float = 0.0
) -> tuple[Action, list[Reason], float | None]:
    """The sequential rule: this week's deficit added to the champion's running CUSUM.

    Returns the action, its reasons and the new CUSUM value (``previous`` unchanged when the
    metric could not be judged this week; ``None`` when the rule is off or has no standard error).
    """
    h, k = settings.metric_cusum_threshold, settings.metric_cusum_slack
    if not h:
        return "none", [], None
    gap = metric_gap(performance, metric)
    if gap is None or _insufficient(performance, metric) is not None:
        return "none", [], float(previous)
    d = gap.deficit
    if d is None:
        return "none", [], None
    s = cusum_step(previous, d, k)
    text = (
        f"{gap.label}: the champion's shortfall accumulated to {s:.2f} standard errors over the weeks "
        f"(this week {d:+.2f} se: {gap.reference:.4f} → {gap.current:.4f}, se {gap.se:.4f}; "
        f"CUSUM with slack {k:g}, retrain at ≥ {h:g})"
    )
    if s >= h - _TOL:
        return "retrain", [Reason(CUSUM, "retrain", text, metric, s, h)], s
    if s > 0:
        return "none", [Reason(CUSUM, "none", text, metric, s, h)], s
    return "none", [], s


def calibration_reason(performance: dict[str, Any] | None, settings: DriftSettings) -> Reason | None:
    """``calibration_gap`` (retrain) when the labelled positive rate left the champion's mean score.

    Both conditions: the relative gap is at least ``calibration_gap`` and it is at least
    ``calibration_z`` standard errors (so a small test week cannot fire it); only with enough
    labelled rows and positives, like the metric trigger.
    """
    cal = (performance or {}).get("calibration") or {}
    labelled = (performance or {}).get("labelled") or {}
    ratio, z = cal.get("ratio"), cal.get("z")
    if settings.calibration_gap <= 0 or ratio is None or z is None or not labelled.get("sufficient", False):
        return None
    gap = abs(ratio - 1.0)
    if gap < settings.calibration_gap or abs(z) < settings.calibration_z:
        return None
    text = (
        f"labelled positive rate {cal['observed']:.4f} vs the champion's mean score {cal['predicted']:.4f} "
        f"({gap:.0%} apart, {abs(z):.1f} standard errors; retrain at ≥ {settings.calibration_gap:.0%} and "
        f"≥ {settings.calibration_z:g}): the base rate moved"
    )
    return Reason("calibration_gap", "retrain", text, "positive_rate", float(ratio), 1.0 + settings.calibration_gap)


def performance_decision(
    performance: dict[str, Any] | None, settings: DriftSettings, metric: str, cusum_previous: float = 0.0
) -> tuple[Action, list[Reason], dict[str, float]]:
    """Both metric rules: this week's drop, and the CUSUM over weeks; the stronger level wins.

    When the CUSUM can be evaluated (both standard errors known), a single week at the retrain
    band retrains on its own only when its shortfall is ≥ ``metric_drop_single_week_se``
    standard errors (one-sided 99 %); below that it says *investigate* (a drop of about 1.3
    standard errors is what unchanged data shows one week in ten) and the CUSUM decides; a
    week with a shortfall ≥ threshold + slack fires the CUSUM at once.
    Without standard errors (versions registered before they were stored) the single-week
    band retrains as before.
    """
    level, reasons = metric_decision(performance, settings, metric)
    c_level, c_reasons, s = cusum_decision(performance, settings, metric, cusum_previous)
    state = {} if s is None else {CUSUM: s}
    d = None if s is None else getattr(metric_gap(performance, metric), "deficit", None)
    if s is not None and level == "retrain" and (d is None or d < settings.metric_drop_single_week_se - _TOL):
        level = "investigate"
        h = settings.metric_cusum_threshold
        reasons = [
            Reason(
                r.code,
                "investigate",
                f"{r.text}; one week alone does not retrain: the CUSUM decides ({s:.2f} of {h:g})",
                r.feature,
                r.value,
                r.threshold,
            )
            for r in reasons
        ]
    rank = {"none": 0, "investigate": 1, "retrain": 2}
    if rank[c_level] > rank[level]:
        level = c_level
    return level, [*reasons, *c_reasons], state


def decide(
    report: DriftReport,
    settings: DriftSettings,
    performance: dict[str, Any] | None = None,
    primary_metric: str = "average_precision",
    cusum_previous: float = 0.0,
) -> Decision:
    """Apply the trigger policy (module docstring) to a report; ``performance`` overrides the report's.

    ``cusum_previous`` is the champion's metric CUSUM after last week (0 for a new champion);
    the decision's ``state`` holds this week's value for the decision log.
    """
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
    calibration = calibration_reason(perf, settings)
    if calibration is not None:
        retrain.append(calibration)
    _, metric_reasons, state = performance_decision(perf, settings, primary_metric, cusum_previous)
    notes = [r for r in metric_reasons if r.level == "none"]
    retrain += [r for r in metric_reasons if r.level == "retrain"]
    investigate += [r for r in metric_reasons if r.level == "investigate"]

    if settings.segments_investigate and report.segments:
        for value, seg in report.segments.get("values", {}).items():
            hot = [n for n, d in seg["features"].items() if d["severity"] == "alert"]
            if hot:
                text = f"segment {report.segments['column']}={value} has feature(s) at alert: {', '.join(hot)}"
                investigate.append(Reason("segment_alert", "investigate", text, ",".join(hot)))

    if retrain:
        return Decision.of("retrain", retrain + investigate + notes, state)
    if investigate:
        return Decision.of("investigate", investigate + notes, state)
    if feats and all(f.severity == "insufficient_data" for f in feats):
        text = f"insufficient data: the window has {report.n_current} rows (severity needs ≥ {settings.min_rows})"
        return Decision.of(
            "none",
            [Reason("insufficient_data", "none", text, None, float(report.n_current), settings.min_rows), *notes],
            state,
        )
    return Decision.of(
        "none", [Reason("stable", "none", "no feature, score or metric crossed a threshold"), *notes], state
    )
