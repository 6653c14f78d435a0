"""The simulator's country_names scenario: skew on the first affected week, checked against truth.

The truth per row comes from the ``stable`` run with the same seed, which the simulator keeps
identical row for row except for the scenario's change (here: the country column).
"""

from __future__ import annotations

import pandas as pd
import pytest

from driftline.simulate import simulate
from driftline.validation import promotion_gate, skew_check

SEED, WEEKS, USERS, SHIFT = 3, 4, 1500, 2


@pytest.fixture(scope="module")
def weeks() -> dict[str, pd.DataFrame]:
    named = simulate(weeks=WEEKS, users=USERS, scenarios=("country_names",), seed=SEED, shift_week=SHIFT)
    stable = simulate(weeks=WEEKS, users=USERS, scenarios=("stable",), seed=SEED, shift_week=SHIFT)
    assert named.meta["parameters"]["country_names"]["from_week"] == SHIFT
    t, s = named.traffic, stable.traffic
    assert (t["request_id"].to_numpy() == s["request_id"].to_numpy()).all()
    week = (t["event_time"] - pd.Timestamp("2026-01-05")).dt.days // 7
    truth = s["country"].where(week == SHIFT)
    return {
        "training": t[week < SHIFT],
        "serving": t[week == SHIFT],  # the first affected week
        "truth": truth[week == SHIFT],
        "contract": named.contract,
    }


def _mapped_correctly(finding, serving: pd.DataFrame, truth: pd.Series) -> float:
    affected = ~serving["country"].isin(finding.mapping.values())
    guessed = serving.loc[affected, "country"].map(finding.mapping)
    return float((guessed == truth[affected]).sum() / affected.sum())


@pytest.mark.parametrize(
    "methods",
    [("normalise", "country", "entity"), ("entity",), ("country",)],
    ids=["all-evidence", "entity-ids-joined", "country-names-only"],
)
def test_country_names_are_mapped_to_the_right_iso_codes(weeks, methods):
    serving, truth = weeks["serving"], weeks["truth"]
    report = skew_check(weeks["training"], serving, weeks["contract"], methods=methods)
    (f,) = report.for_feature("country", "vocabulary")
    assert f.severity == "high"
    assert f.rows_affected == len(serving)  # every row of the week carries a name
    assert _mapped_correctly(f, serving, truth) >= 0.95
    assert f.mapping["United States"] == "US" and f.mapping["United Kingdom"] == "GB"
    if methods == ("entity",):
        assert all(e[0].startswith("entity_join(") for e in f.evidence.values())
    gate = promotion_gate(None, report, weeks["contract"])
    assert gate.blocked and "key feature country" in gate.reasons[0]


def test_a_x100_scale_change_on_one_numeric_feature_is_found(weeks):
    serving = weeks["serving"].copy()
    serving["query_length_mean"] = serving["query_length_mean"] * 100
    report = skew_check(weeks["training"], serving, weeks["contract"])
    (f,) = report.for_feature("query_length_mean")
    assert f.kind == "scale" and f.factor == 100.0
    others = [x.feature for x in report.findings if x.kind == "scale" and x.feature != "query_length_mean"]
    assert others == []


def test_stable_weeks_show_no_skew(weeks):
    week1 = weeks["training"]
    week = (week1["event_time"] - pd.Timestamp("2026-01-05")).dt.days // 7
    report = skew_check(week1[week == 0], week1[week == 1], weeks["contract"])
    assert report.findings == []
