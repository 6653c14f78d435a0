"""Trigger policy: each rule, its threshold and the reason it gives."""

from __future__ import annotations

import pytest

from driftline.drift import Decision, DriftReport, FeatureDrift, decide
from driftline.drift.bands import Band
from driftline.settings import DriftSettings

S = DriftSettings()


def feat(name: str, psi: float, *, key: bool = False, n: int = 5000) -> FeatureDrift:
    band = Band(0.1, 0.25, 0.1, 0.25, "configured")
    sev = "insufficient_data" if n < 100 else "stable" if psi < 0.1 else "alert" if psi > 0.25 else "warn"
    return FeatureDrift(
        name, "numeric", psi, psi / 2, 0.1, sev, band, "ks", 0.1, 0.5, 5000, n, 0.0, None, 0.0, {}, [], [], [], key
    )


def report(*features: FeatureDrift, score: FeatureDrift | None = None) -> DriftReport:
    n = features[0].n_current if features else 5000
    return DriftReport("c", "fp", 5000, n, {f.name: f for f in features}, S, score=score)


def perf(metric: str, ref: float, cur: float) -> dict:
    return {
        "change": {metric: {"reference": ref, "current": cur, "absolute": cur - ref, "relative": (cur - ref) / ref}}
    }


def test_stable_is_none() -> None:
    d = decide(report(feat("a", 0.01), feat("b", 0.05)), S)
    assert d == Decision("none", ["no feature, score or metric crossed a threshold"])


def test_key_feature_at_alert_retrains_non_key_investigates() -> None:
    d = decide(report(feat("a", 0.4, key=True), feat("b", 0.01)), S)
    assert d.action == "retrain"
    assert d.reasons[0] == "key feature 'a' at alert (PSI 0.400 > alert threshold 0.250)"
    d = decide(report(feat("a", 0.4), feat("b", 0.01)), S)
    assert d.action == "investigate"
    assert d.reasons == ["feature 'a' at alert (PSI 0.400 > alert threshold 0.250)"]


def test_three_features_at_warn_retrain() -> None:
    two = report(feat("a", 0.12), feat("b", 0.11), feat("c", 0.01))
    assert decide(two, S).action == "investigate"
    three = report(feat("a", 0.12), feat("b", 0.11), feat("c", 0.2))
    d = decide(three, S)
    assert d.action == "retrain"
    assert d.reasons[0].startswith("3 features at warn or above (retrain at ≥ 3): 'c' (0.200), 'a' (0.120)")
    assert decide(three, DriftSettings(warn_features_for_retrain=4)).action == "investigate"


def test_score_alert_retrains_score_warn_investigates() -> None:
    assert decide(report(feat("a", 0.0), score=feat("score", 0.3)), S).action == "retrain"
    d = decide(report(feat("a", 0.0), score=feat("score", 0.15)), S)
    assert d.action == "investigate" and d.reasons[0].startswith("model score 'score' at warn")


@pytest.mark.parametrize(
    ("cur", "action"),
    [(0.50, "none"), (0.486, "none"), (0.485, "investigate"), (0.451, "investigate"), (0.45, "retrain")],
)
def test_metric_drop_bands(cur: float, action: str) -> None:
    # reference AP 0.5: a 3% relative drop is 0.485, a 10% drop is 0.45
    d = decide(report(feat("a", 0.0)), S, performance=perf("average_precision", 0.5, cur))
    assert d.action == action


def test_metric_reason_names_metric_and_values() -> None:
    d = decide(report(feat("a", 0.0)), S, performance=perf("roc_auc", 0.8, 0.6), primary_metric="roc_auc")
    assert d.action == "retrain"
    assert d.reasons == ["roc_auc dropped 25.0% relative (0.8000 → 0.6000); retrain at ≥ 10%"]


def test_insufficient_data_never_triggers() -> None:
    d = decide(report(feat("a", 3.0, key=True, n=50)), S)
    assert d.action == "none" and d.reasons[0].startswith("insufficient data: the window has 50 rows")


def test_segments_investigate_is_opt_in() -> None:
    r = report(feat("a", 0.0))
    r.segments = {"column": "country", "values": {"US": {"features": {"a": {"severity": "alert"}}}}}
    assert decide(r, S).action == "none"
    d = decide(r, DriftSettings(segments_investigate=True))
    assert d == Decision("investigate", ["segment country=US has feature(s) at alert: a"])


def _perf_with(ref: float, cur: float, margin: float | None, p0: float | None = None, p1: float | None = None) -> dict:
    out = perf("average_precision", ref, cur)
    out["interval"] = {"high": cur + 0.01, "significance_margin": margin, "upper_confidence": 0.9}
    out["labelled"] = {"n": 2000, "positives": 200, "min_rows": 200, "min_positives": 20, "sufficient": True}
    if p0 is not None:
        out["change"]["positive_rate"] = {"reference": p0, "current": p1}
    return out


def test_a_drop_must_exceed_both_measurements_uncertainty() -> None:
    # A 12% drop (0.50 -> 0.44) against a combined margin of 0.08: within noise -> investigate.
    d = decide(report(feat("a", 0.0)), S, performance=_perf_with(0.5, 0.44, margin=0.08))
    assert d.action == "investigate" and d.codes[0].code == "metric_drop_within_noise"
    assert "the drop must exceed 0.0800" in d.reasons[0]
    # The same drop with a margin of 0.03 is real -> retrain.
    d = decide(report(feat("a", 0.0)), S, performance=_perf_with(0.5, 0.44, margin=0.03))
    assert d.action == "retrain" and d.codes[0].code == "metric_drop"
    # A 4% drop with a small margin investigates; with a large one it says nothing.
    assert decide(report(feat("a", 0.0)), S, performance=_perf_with(0.5, 0.48, margin=0.01)).action == "investigate"
    assert decide(report(feat("a", 0.0)), S, performance=_perf_with(0.5, 0.48, margin=0.05)).action == "none"


def test_average_precision_is_judged_as_lift_when_the_positive_rate_moves() -> None:
    # Positives doubled (10% -> 20%): raw AP rose 0.40 -> 0.42, but the lift over the positive
    # rate fell from (0.40-0.10)/0.90 = 0.333 to (0.42-0.20)/0.80 = 0.275: a 17.5% drop.
    d = decide(report(feat("a", 0.0)), S, performance=_perf_with(0.40, 0.42, margin=0.01, p0=0.10, p1=0.20))
    assert d.action == "retrain"
    assert d.codes[0].value == pytest.approx(1 - 0.275 / (0.3 / 0.9), abs=1e-9)
    assert "lift over the positive rate 0.100 → 0.200" in d.reasons[0]
    # A small base-rate wobble (< 10% relative) keeps raw AP.
    d = decide(report(feat("a", 0.0)), S, performance=_perf_with(0.40, 0.42, margin=0.01, p0=0.10, p1=0.105))
    assert d.action == "none"


def test_calibration_in_the_large_by_hand() -> None:
    import math

    import numpy as np

    from driftline.weekly import calibration_in_the_large

    c = calibration_in_the_large(np.array([1, 1, 0, 0]), np.full(4, 0.25))
    # observed 0.5, predicted 0.25; se = sqrt(4 * 0.25 * 0.75) / 4 = sqrt(0.75) / 4
    assert c["observed"] == 0.5 and c["predicted"] == 0.25 and c["ratio"] == 2.0
    assert c["z"] == pytest.approx(0.25 / (math.sqrt(0.75) / 4), rel=1e-12)
    w = np.array([3.0, 1.0, 1.0, 1.0])  # weights count a row that many times
    cw = calibration_in_the_large(np.array([1, 0, 0, 0]), np.array([0.5, 0.1, 0.1, 0.1]), w)
    assert cw["observed"] == pytest.approx(3 / 6) and cw["predicted"] == pytest.approx((1.5 + 0.3) / 6)
    assert cw["z"] == pytest.approx((0.5 - 0.3) / (math.sqrt(9 * 0.25 + 3 * 0.09) / 6), rel=1e-12)


def _calibrated(ratio: float, z: float, sufficient: bool = True) -> dict:
    return {
        "labelled": {"sufficient": sufficient},
        "calibration": {"observed": 0.2 * ratio, "predicted": 0.2, "ratio": ratio, "z": z},
    }


def test_a_base_rate_that_left_the_champions_scores_retrains() -> None:
    d = decide(report(feat("a", 0.0)), S, performance=_calibrated(2.2, 9.0))
    assert d.action == "retrain" and d.codes[0].code == "calibration_gap" and d.cause == "performance"
    assert d.codes[0].value == pytest.approx(2.2) and d.codes[0].threshold == pytest.approx(1.25)
    assert "the base rate moved" in d.reasons[0]
    # Too small a gap, too few standard errors, or too few labels: no trigger; 0 switches it off.
    assert decide(report(feat("a", 0.0)), S, performance=_calibrated(1.2, 9.0)).action == "none"
    assert decide(report(feat("a", 0.0)), S, performance=_calibrated(0.7, -3.9)).action == "none"
    assert decide(report(feat("a", 0.0)), S, performance=_calibrated(0.7, -4.1)).action == "retrain"
    assert decide(report(feat("a", 0.0)), S, performance=_calibrated(2.2, 9.0, sufficient=False)).action == "none"
    off = DriftSettings(calibration_gap=0)
    assert decide(report(feat("a", 0.0)), off, performance=_calibrated(2.2, 9.0)).action == "none"
