"""The rename rule of the vocabulary check: a serving value maps to a training value only when it replaces it.

Replaces = the old value vanished from serving (serving share ≤ 10% of its training share) and the
values proposed for it take its training share (±50% relative, plus 3 two-proportion standard
errors). A new value served alongside the old one is a new category: drift, not skew.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.validation import promotion_gate
from driftline.validation.skew import SkewThresholds, rename_check, skew_check, vocabulary_skew

CONTRACT = parse_contract(
    {
        "name": "renames",
        "entity_id": "user_id",
        "timestamp": "event_time",
        "target": {"name": "churned"},
        "features": {
            "country": {"type": "categorical", "key": True},
            "plan": {"type": "categorical", "key": True},
        },
    }
)

T0 = pd.Timestamp("2026-01-05")
USERS = [f"u{i:03d}" for i in range(200)]
CODES = ["US"] * 80 + ["GB"] * 60 + ["DE"] * 40 + ["FR"] * 20
NAMES = {"US": "United States", "GB": "United Kingdom", "DE": "Germany", "FR": "France"}
PLANS = ["basic"] * 100 + ["pro"] * 60 + ["free"] * 40  # users u000-u099 have basic in training


def _week(plans: list[str], countries: list[str], week: int) -> pd.DataFrame:
    """One row per user, all at the same time (a week apart between sides: no row-level join)."""
    return pd.DataFrame(
        {
            "user_id": USERS,
            "event_time": [T0 + pd.Timedelta(weeks=week)] * len(USERS),
            "country": countries,
            "plan": plans,
        }
    )


TRAINING = _week(PLANS, CODES, 0)


def _serving_plans(changed: dict[int, str]) -> list[str]:
    plans = list(PLANS)
    for i, value in changed.items():
        plans[i] = value
    return plans


def S(values) -> pd.Series:  # noqa: N802 - short helper for literal series
    return pd.Series(values, dtype=object)


# -- 1. country names replacing ISO codes still map, and block -----------------------------------


@pytest.mark.parametrize("methods", [("normalise", "country", "entity"), ("entity",), ("country",)])
def test_country_names_replacing_codes_map_every_row_and_block(methods):
    serving = _week(PLANS, [NAMES[c] for c in CODES], 1)
    report = skew_check(TRAINING, serving, CONTRACT, methods=methods)
    (f,) = report.findings
    assert (f.kind, f.feature, f.severity, f.rows_affected) == ("vocabulary", "country", "high", 200)
    assert f.mapping == {"United States": "US", "United Kingdom": "GB", "Germany": "DE", "France": "FR"}
    assert f.unmapped == {} and f.details["new_categories"] == {}
    assert f.details["rename_checks"]["US"]["training_share"] == pytest.approx(0.4)
    assert f.details["rename_checks"]["US"]["serving_share"] == 0.0
    assert f.details["rename_checks"]["US"]["replacing_share"] == pytest.approx(0.4)
    gate = promotion_gate(None, report, CONTRACT)
    assert gate.blocked is True and "key feature country" in gate.reasons[0]


# -- 2. a new plan next to the old one is a new category ----------------------------------------


@pytest.mark.parametrize("adopters", [9, 30])  # 9% (4.5% of rows) and 30% (15% of rows) of basic users
def test_new_plan_adopted_by_some_basic_users_is_not_a_rename(adopters):
    rng = np.random.default_rng(2026)
    chosen = rng.choice(100, size=adopters, replace=False)  # users who had basic in training
    serving = _week(_serving_plans(dict.fromkeys(chosen.tolist(), "basic_plus_2026")), CODES, 1)
    report = skew_check(TRAINING, serving, CONTRACT)
    (f,) = report.findings
    assert (f.kind, f.feature, f.rows_affected) == ("vocabulary", "plan", adopters)
    # The entity evidence points at basic (every adopter had it: confidence min(1, n/10) >= 0.9),
    # but basic is still served at (100 - adopters) / 200, far above 10% of its 50% training share.
    assert f.mapping == {} and f.confidence == {}
    assert f.details["new_categories"] == {"basic_plus_2026": "basic"}
    check = f.details["rename_checks"]["basic"]
    assert check["serving_share"] == pytest.approx((100 - adopters) / 200)
    assert (check["vanished"], check["replaced"]) == (False, False)
    assert f.severity == "low"  # even at 15% of rows (>= new_values_share): a new category, not skew
    assert f.unmapped == {"basic_plus_2026": adopters}
    assert "new categories, drift rather than skew" in f.suggested_fix
    gate = promotion_gate(None, report, CONTRACT)
    assert gate.blocked is False
    assert any("key feature plan (low" in w for w in gate.warnings)


def test_a_case_variant_served_alongside_the_original_is_a_new_category():
    training = S(["ios"] * 6 + ["android"] * 4)
    serving = S(["IOS", "IOS", " Android", "andróid", "ios", "tablet"])  # ios still at 1/6 (28% of 6/10)
    f = vocabulary_skew(training, serving, "device", methods=("normalise",))
    assert f.mapping == {" Android": "android", "andróid": "android"}  # android vanished: renamed
    assert f.details["new_categories"] == {"IOS": "ios"}
    assert f.unmapped == {"IOS": 2, "tablet": 1}


# -- 3. a true rename, seen through the entity join --------------------------------------------


@pytest.mark.parametrize("stragglers", [0, 3])  # basic users still sending basic in serving
def test_basic_replaced_by_basic_v2_for_the_same_entities_is_a_rename(stragglers):
    rng = np.random.default_rng(7)
    stay = set(rng.choice(100, size=stragglers, replace=False).tolist())
    serving = _week(_serving_plans({i: "basic_v2" for i in range(100) if i not in stay}), CODES, 1)
    report = skew_check(TRAINING, serving, CONTRACT)
    (f,) = report.findings
    moved = 100 - stragglers
    assert f.mapping == {"basic_v2": "basic"}
    assert f.confidence == {"basic_v2": 1.0} and f.evidence == {"basic_v2": [f"entity_join({moved}/{moved})"]}
    assert (f.severity, f.rows_affected, f.details["new_categories"]) == ("high", moved, {})
    assert f.details["rename_checks"]["basic"]["replacing_share"] == pytest.approx(0.5)  # basic_v2 + stragglers
    gate = promotion_gate(None, report, CONTRACT)
    assert gate.blocked is True and "key feature plan" in gate.reasons[0]


# -- 4. the boundaries of the rule -------------------------------------------------------------


@pytest.mark.parametrize(("stay", "renamed"), [(10, True), (11, False)])
def test_vanish_boundary_with_entity_evidence(stay, renamed):
    # basic: 100/200 = 50% of training rows; vanished means <= 10% of that = 5% = 10 of 200 serving rows.
    serving = _week(_serving_plans({i: "basic_v2" for i in range(stay, 100)}), CODES, 1)
    (f,) = skew_check(TRAINING, serving, CONTRACT).findings
    assert f.mapping == ({"basic_v2": "basic"} if renamed else {})
    assert f.details["new_categories"] == ({} if renamed else {"basic_v2": "basic"})
    assert f.severity == ("high" if renamed else "low")


@pytest.mark.parametrize(("stay", "renamed"), [(40, True), (41, False)])
def test_vanish_boundary_with_normalisation_evidence(stay, renamed):
    # basic: 400/1000 of training; vanished means at most 0.1 x 40% = 4% = 40 of 1000 serving rows.
    training = S(["basic"] * 400 + ["pro"] * 600)
    serving = S(["basic"] * stay + ["Basic"] * (400 - stay) + ["pro"] * 600)
    f = vocabulary_skew(training, serving, "plan", methods=("normalise",))
    assert f.mapping == ({"Basic": "basic"} if renamed else {})
    # 36% of rows: high when a rename, low (not medium, despite >= 5%) when a new category
    assert f.severity == ("high" if renamed else "low")


def _share_tolerance(k: int) -> float:
    """Hand-written rule for training basic 400/1000 vs serving 'Basic' k/1000 (basic gone)."""
    pooled = (400 + k) / 2000
    return 0.5 * 0.4 + 3 * math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))


@pytest.mark.parametrize(
    ("k", "renamed"),
    [
        (140, False),  # |0.140 - 0.4| = 0.260 > 0.2596 (tolerance at k = 140)
        (141, True),  # |0.141 - 0.4| = 0.259 < 0.2596
        (666, True),  # |0.666 - 0.4| = 0.266 < 0.2669
        (667, False),  # |0.667 - 0.4| = 0.267 > 0.2669
    ],
)
def test_share_boundary_with_default_thresholds(k, renamed):
    assert (abs(k / 1000 - 0.4) <= _share_tolerance(k)) is renamed  # the hand-worked numbers above
    training = S(["basic"] * 400 + ["pro"] * 600)
    serving = S(["Basic"] * k + ["pro"] * (1000 - k))
    f = vocabulary_skew(training, serving, "plan", methods=("normalise",))
    assert f.mapping == ({"Basic": "basic"} if renamed else {})
    assert f.details["share_mismatch"] == ({} if renamed else {"Basic": "basic"})
    assert f.details["rename_checks"]["basic"]["tolerance"] == pytest.approx(_share_tolerance(k))


@pytest.mark.parametrize(("k", "renamed"), [(199, False), (200, True), (600, True), (601, False)])
def test_share_boundary_of_the_relative_band_alone(k, renamed):
    # Without the noise term the band is 40% ± 50% of 40% = [20%, 60%] of serving rows.
    check = rename_check(400, 1000, 0, k, 1000, SkewThresholds(rename_share_z=0.0))
    assert check["tolerance"] == pytest.approx(0.2)
    assert (check["vanished"], check["share_matches"], check["replaced"]) == (True, renamed, renamed)


def test_rename_check_shares_and_noise_term_on_tiny_samples():
    # Old value 3 of 10 training rows, gone from serving; its replacement 2 of 10 serving rows.
    check = rename_check(3, 10, 0, 2, 10)
    pooled = 5 / 20
    se = math.sqrt(pooled * (1 - pooled) * (1 / 10 + 1 / 10))
    assert check["training_share"] == pytest.approx(0.3) and check["replacing_share"] == pytest.approx(0.2)
    assert check["tolerance"] == pytest.approx(0.15 + 3 * se)  # 0.15 + 0.581: tiny samples say little
    assert check["replaced"] is True
    # A value known only from the contract's vocabulary: no share to match, it must just not be served.
    assert rename_check(0, 10, 0, 4, 10)["replaced"] is True
    assert rename_check(0, 10, 1, 4, 10)["replaced"] is False


# -- a window that straddles the change: time evidence (the cutover) ----------------------------
def _straddling(values_before: list[str], values_after: list[str]) -> pd.DataFrame:
    """Two rows per user in the serving week: Monday with the old values, Thursday with the new."""
    monday = _week(PLANS, values_before, 1)
    thursday = _week(PLANS, values_after, 1).assign(event_time=T0 + pd.Timedelta(weeks=1, days=3))
    return pd.concat([monday, thursday], ignore_index=True)


def test_a_rename_mid_window_is_found_from_the_cutover_on():
    serving = _straddling(CODES, [NAMES[c] for c in CODES])
    report = skew_check(TRAINING, serving, CONTRACT, row_level=False)
    (f,) = report.for_feature("country", "vocabulary")
    assert f.mapping == {v: k for k, v in NAMES.items()} and f.severity == "high"
    check = f.details["rename_checks"]["US"]
    assert check["replaced"] and "cutover" in check and check["whole_window"]["vanished"] is False
    assert promotion_gate(None, report, CONTRACT).blocked


def test_a_new_category_appearing_mid_window_is_still_not_a_rename():
    later = _serving_plans({i: "basic_plus_2026" for i in range(0, 100, 11)})  # 9 of 100 basic users
    monday = _week(PLANS, CODES, 1)
    thursday = _week(later, CODES, 1).assign(event_time=T0 + pd.Timedelta(weeks=1, days=3))
    report = skew_check(TRAINING, pd.concat([monday, thursday], ignore_index=True), CONTRACT, row_level=False)
    (f,) = report.for_feature("plan", "vocabulary")
    assert f.mapping in (None, {}) and f.severity == "low"
    assert not promotion_gate(None, report, CONTRACT).blocked
