"""The sequential metric trigger (one-sided CUSUM) and the settle re-check, with hand-worked numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from driftline import weekly
from driftline.drift import decide
from driftline.drift.policy import CUSUM, cusum_decision, cusum_step, metric_gap, performance_decision
from driftline.settings import DriftSettings
from tests.unit.test_drift_policy import feat, report

S = DriftSettings()  # slack k = 0.5, threshold h = 3.5


def perf(ref: float, cur: float, se: float, reference_se: float, *, p0=None, p1=None, sufficient=True) -> dict:
    out = {
        "change": {
            "average_precision": {
                "reference": ref,
                "current": cur,
                "absolute": cur - ref,
                "relative": (cur - ref) / ref,
            }
        },
        "interval": {"high": cur + 0.01, "se": se, "reference_se": reference_se, "upper_confidence": 0.9},
        "labelled": {"n": 2000, "positives": 200, "min_rows": 200, "min_positives": 20, "sufficient": sufficient},
    }
    if p0 is not None:
        out["change"]["positive_rate"] = {"reference": p0, "current": p1}
    return out


def test_cusum_step_by_hand() -> None:
    # k = 0.5; deficits 1.2, 0.3, 2.0, -1.0, 3.5 (standard errors)
    values, s = [], 0.0
    for d in (1.2, 0.3, 2.0, -1.0, 3.5):
        s = cusum_step(s, d, 0.5)
        values.append(s)
    # 0 + 1.2 - .5 = .7; .7 + .3 - .5 = .5; .5 + 2 - .5 = 2; max(0, 2 - 1 - .5) = .5; .5 + 3.5 - .5 = 3.5
    assert values == pytest.approx([0.7, 0.5, 2.0, 0.5, 3.5], abs=1e-12)
    assert cusum_step(0.2, -3.0, 0.5) == 0.0  # never negative


def test_deficit_is_in_units_of_the_combined_standard_error() -> None:
    # ref 0.40, now 0.37; se_now 0.012, se_ref 0.016 -> combined sqrt(.012² + .016²) = 0.020; d = 0.03 / 0.02 = 1.5
    gap = metric_gap(perf(0.40, 0.37, 0.012, 0.016), "average_precision")
    assert gap.se == pytest.approx(0.020, abs=1e-12)
    assert gap.deficit == pytest.approx(1.5, abs=1e-9)
    # Positive rate 10% -> 20%: lift (AP - pi)/(1 - pi), se scaled by 1/(1 - 0.2)
    gap = metric_gap(perf(0.40, 0.42, 0.012, 0.016, p0=0.10, p1=0.20), "average_precision")
    assert gap.reference == pytest.approx(0.3 / 0.9)
    assert gap.current == pytest.approx(0.22 / 0.8)
    assert gap.se == pytest.approx(0.020 / 0.8)
    assert gap.deficit == pytest.approx((0.3 / 0.9 - 0.275) / 0.025, abs=1e-9)  # 2.3333...


def test_cusum_fires_at_the_threshold_and_reports_its_numbers() -> None:
    p = perf(0.40, 0.37, 0.012, 0.016)  # d = 1.5: 7.5% drop, below the 10% single-week band
    action, reasons, s = cusum_decision(p, S, "average_precision", previous=3.2)
    assert s == pytest.approx(4.2)  # 3.2 + 1.5 - 0.5
    assert action == "retrain"
    (r,) = reasons
    assert (r.code, r.level, r.feature, r.threshold) == (CUSUM, "retrain", "average_precision", 3.5)
    assert r.value == pytest.approx(4.2)
    assert "accumulated to 4.20 standard errors" in r.text and "this week +1.50 se" in r.text
    assert "retrain at ≥ 3.5" in r.text
    # Exactly at the threshold fires (3.5 = 2.5 + 1.5 - 0.5); just below does not.
    assert cusum_decision(p, S, "average_precision", previous=2.5)[0] == "retrain"
    assert cusum_decision(p, S, "average_precision", previous=2.49)[0] == "none"
    # Below the threshold it is a note (level none) and the value is carried.
    action, reasons, s = cusum_decision(p, S, "average_precision", previous=1.0)
    assert (action, s) == ("none", pytest.approx(2.0))
    assert reasons[0].level == "none"
    # Improving weeks drain it to 0 with no reason at all.
    assert cusum_decision(perf(0.40, 0.42, 0.012, 0.016), S, "average_precision", 0.3) == ("none", [], 0.0)


def test_cusum_waits_without_labels_and_is_off_at_threshold_zero() -> None:
    p = perf(0.40, 0.30, 0.012, 0.016, sufficient=False)
    assert cusum_decision(p, S, "average_precision", previous=2.5) == ("none", [], 2.5)
    assert (
        cusum_decision(perf(0.4, 0.3, 0.01, 0.01), DriftSettings(metric_cusum_threshold=0), "average_precision", 9)[2]
        is None
    )
    # No standard errors (an older champion without a stored se): the CUSUM is not kept.
    p = perf(0.40, 0.37, 0.012, 0.016)
    p["interval"]["reference_se"] = None
    assert cusum_decision(p, S, "average_precision", previous=2.0) == ("none", [], None)


def test_decide_retrains_on_the_cusum_and_keeps_the_state() -> None:
    p = perf(0.40, 0.37, 0.012, 0.016)
    p["interval"]["high"] = 0.42  # this week alone is within its noise: the single-week rule says nothing
    d = decide(report(feat("a", 0.0)), S, performance=p, cusum_previous=3.2)
    assert d.action == "retrain" and d.cause == "performance"
    assert [r.code for r in d.codes] == [CUSUM]
    assert d.state == {CUSUM: pytest.approx(4.2)}
    d = decide(report(feat("a", 0.0)), S, performance=p)
    assert d.action == "none" and [r.code for r in d.codes] == ["stable", CUSUM]
    assert d.state == {CUSUM: pytest.approx(1.0)}
    # A large single week fires the CUSUM at once: 25% drop, d = 0.1 / 0.02 = 5, S = 5 - 0.5 = 4.5.
    level, reasons, state = performance_decision(perf(0.40, 0.30, 0.012, 0.016), S, "average_precision")
    assert level == "retrain" and [(r.code, r.level) for r in reasons] == [
        ("metric_drop", "retrain"),
        (CUSUM, "retrain"),
    ]
    assert state[CUSUM] == pytest.approx(4.5)


def test_one_week_at_the_retrain_band_investigates_when_the_cusum_is_on() -> None:
    # 11.25% drop (0.40 -> 0.355), d = 0.045 / 0.02 = 2.25 > z(0.9) = 1.28: significant at 90% but
    # below 2.33 se, and S = 1.75 < 3.5 -> investigate; with the CUSUM off (or no se) the band retrains.
    p = perf(0.40, 0.355, 0.012, 0.016)
    p["interval"]["significance_margin"] = 0.0256
    level, reasons, state = performance_decision(p, S, "average_precision")
    assert level == "investigate" and reasons[0].code == "metric_drop" and reasons[0].level == "investigate"
    assert "the CUSUM decides (1.75 of 3.5)" in reasons[0].text
    assert state == {CUSUM: pytest.approx(1.75)}
    assert performance_decision(p, DriftSettings(metric_cusum_threshold=0), "average_precision")[0] == "retrain"
    p["interval"]["reference_se"] = None
    assert performance_decision(p, S, "average_precision")[:2][0] == "retrain"
    # A single week far outside the noise still retrains alone: 15% drop, d = 0.06 / 0.02 = 3.0 ≥ 2.33
    # (the CUSUM, 2.5, has not fired); at 2.33 exactly it retrains, just below it investigates.
    p = perf(0.40, 0.34, 0.012, 0.016)
    p["interval"]["significance_margin"] = 0.0256
    level, reasons, _ = performance_decision(p, S, "average_precision")
    assert level == "retrain" and [(r.code, r.level) for r in reasons] == [("metric_drop", "retrain"), (CUSUM, "none")]
    p = perf(0.40, 0.40 - 0.02 * 2.33, 0.012, 0.016)
    p["interval"]["significance_margin"] = 0.0256
    assert performance_decision(p, S, "average_precision")[0] == "retrain"
    assert performance_decision(p, DriftSettings(metric_drop_single_week_se=2.34), "average_precision")[0] == (
        "investigate"
    )


@dataclass(frozen=True)
class D:
    week: str
    champion_version: str | None
    action: str
    codes: tuple[str, ...] = ()
    state: dict = field(default_factory=dict)


def test_cusum_carries_over_only_for_the_same_champion_without_a_retrain_between() -> None:
    assert weekly.cusum_carried([], "3") == 0.0
    assert weekly.cusum_carried([D("w2", "3", "none", state={CUSUM: 2.5})], "3") == 2.5
    assert weekly.cusum_carried([D("w2", "2", "none", state={CUSUM: 2.5})], "3") == 0.0  # new champion
    assert weekly.cusum_carried([D("w2", "3", "retrain", state={CUSUM: 5.0})], "3") == 0.0  # alarm answered
    assert weekly.cusum_carried([D("w2", "3", "investigate")], "3") == 0.0  # an older row without state


def champ(version: str, parent: str) -> weekly.Champion:
    return weekly.Champion(version, None, None, None, {}, {"parent_version": parent})


def test_settle_rechecks_while_triggered_retrains_keep_promoting() -> None:
    triggered = D("w5", "1", "retrain", ("metric_cusum",))
    # Week 6: the champion v2 came from week 5's triggered retrain against v1 -> re-check 1 of 3.
    action, cause, codes = weekly.settle("none", None, [], [triggered], champ("2", "1"), 3)
    assert (action, cause) == ("retrain", "performance")
    assert (codes[0].code, codes[0].value, codes[0].threshold) == ("settle_recheck", 1.0, 3.0)
    # Week 7 after re-check 1 promoted v3; week 8 after re-check 2 promoted v4.
    chain = [D("w6", "2", "retrain", ("settle_recheck", "stable")), triggered]
    assert weekly.settle("none", None, [], chain, champ("3", "2"), 3)[2][0].value == 2.0
    chain = [D("w7", "3", "retrain", ("settle_recheck",)), *chain]
    assert weekly.settle("none", None, [], chain, champ("4", "3"), 3)[2][0].value == 3.0
    # After three re-checks it stops, whatever happened.
    chain = [D("w8", "4", "retrain", ("settle_recheck",)), *chain]
    assert weekly.settle("none", None, [], chain, champ("5", "4"), 3)[0] == "none"
    # A triggered retrain promoted inside the episode counts as one of its weeks.
    chain = [D("w7", "3", "retrain", ("metric_cusum",)), D("w6", "2", "retrain", ("settle_recheck",)), triggered]
    assert weekly.settle("none", None, [], chain, champ("4", "3"), 3)[2][0].value == 3.0
    assert weekly.settle("none", None, [], chain, champ("4", "3"), 2)[0] == "none"


def test_settle_stops_at_the_first_rejection_and_ignores_untriggered_promotions() -> None:
    # The re-check of week 6 was rejected: v2 is still champion -> no further re-check.
    rejected = [D("w6", "2", "retrain", ("settle_recheck",)), D("w5", "1", "retrain", ("metric_drop",))]
    assert weekly.settle("none", None, [], rejected, champ("2", "1"), 3)[0] == "none"
    # A forced, scheduled or bootstrap promotion is no regime change.
    for code in ("forced", "scheduled", "no_champion"):
        prior = [D("w5", "1", "retrain", (code, "stable"))]
        assert weekly.settle("none", None, [], prior, champ("2", "1"), 3)[0] == "none"
    # A drift retrain settles as drift; a rollback (champion not descended from last week's) does not.
    prior = [D("w5", "1", "retrain", ("key_feature_alert",))]
    assert weekly.settle("none", None, [], prior, champ("2", "1"), 3)[:2] == ("retrain", "drift")
    assert weekly.settle("none", None, [], prior, champ("0", ""), 3)[0] == "none"
    # Off at 0; a week that retrains anyway is left alone.
    assert weekly.settle("none", None, [], prior, champ("2", "1"), 0)[0] == "none"
    assert weekly.settle("retrain", "drift", ["x"], prior, champ("2", "1"), 3) == ("retrain", "drift", ["x"])


def test_decision_log_keeps_the_state_and_reads_old_rows(tmp_path) -> None:
    import sqlalchemy as sa

    from driftline.registry.history import DecisionLog, RegistryStore

    store = RegistryStore(f"sqlite:///{tmp_path / 'r.db'}")
    log = DecisionLog(store)
    log.record("m", "2026-01-05", "1", "none", ["stable", CUSUM], {CUSUM: 1.25})
    log.record("m", "2026-01-12", "1", "none", ["stable"])
    with store.engine.begin() as conn:  # a row written before the state existed: a bare JSON list
        conn.execute(sa.text("UPDATE weekly_decisions SET codes = '[\"stable\"]' WHERE week = '2026-01-12'"))
    newest, older = log.before("m", "2026-01-19")
    assert (newest.codes, dict(newest.state)) == (("stable",), {})
    assert (older.codes, dict(older.state)) == (("stable", CUSUM), {CUSUM: 1.25})
