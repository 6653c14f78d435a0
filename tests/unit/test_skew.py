"""Skew checks on tiny fixed inputs with hand-worked expected values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.validation.skew import (
    CONF_COUNTRY,
    CONF_NORMALISED,
    SkewThresholds,
    row_level_skew,
    scale_ratio,
    scale_skew,
    skew_check,
    vocabulary_skew,
)

CONTRACT = parse_contract(
    {
        "name": "skewtest",
        "entity_id": "user_id",
        "timestamp": "event_time",
        "target": {"name": "y"},
        "features": {
            "device": {"type": "categorical", "key": True},
            "plan": {"type": "categorical", "vocabulary": ["free", "pro"], "closed": True},
            "amount": {"type": "numeric"},
            "flag": {"type": "boolean"},
        },
    }
)


def S(values) -> pd.Series:  # noqa: N802 - short helper for literal series
    return pd.Series(values, dtype=object)


# -- vocabulary ----------------------------------------------------------------------------


def test_normalisation_maps_case_whitespace_punctuation_and_accents():
    training = S(["ios"] * 6 + ["android"] * 4)
    # "ios" and "android" are gone from serving: their variants replace them (a rename, see
    # test_skew_renames.py for a variant served alongside its original)
    serving = S(["IOS", "IOS", " Android", "andróid", "tablet"])
    f = vocabulary_skew(training, serving, "device", methods=("normalise",))
    assert f.kind == "vocabulary" and f.feature == "device"
    assert f.mapping == {"IOS": "ios", " Android": "android", "andróid": "android"}
    assert f.confidence == {"IOS": CONF_NORMALISED, " Android": CONF_NORMALISED, "andróid": CONF_NORMALISED}
    assert f.evidence == {"IOS": ["normalised"], " Android": ["normalised"], "andróid": ["normalised"]}
    assert f.unmapped == {"tablet": 1}
    assert f.rows_affected == 5 and f.share_affected == pytest.approx(5 / 5)
    assert f.details["mapped_rows"] == 4
    assert f.severity == "high"  # 4 of 5 rows mapped: a representation mismatch


def test_ambiguous_normalisation_picks_the_more_frequent_value_with_low_confidence():
    f = vocabulary_skew(S(["a-b"] * 3 + ["ab"]), S(["AB"]), "x", methods=("normalise",))
    assert f.mapping == {"AB": "a-b"} and f.confidence == {"AB": 0.6}


def test_country_names_map_to_iso_codes():
    training = S(["US"] * 5 + ["GB"] * 3 + ["DE"] * 2)
    serving = S(["United States"] * 4 + ["UK"] * 2 + ["Deutschland", "germany", "Atlantis", "U.S."])
    f = vocabulary_skew(training, serving, "country")
    assert f.mapping == {"United States": "US", "UK": "GB", "Deutschland": "DE", "germany": "DE", "U.S.": "US"}
    assert f.confidence["United States"] == CONF_COUNTRY
    # "U.S." is both a normalised match ("us") and a country: 1 - (1 - 0.95)(1 - 0.9)
    assert f.confidence["U.S."] == pytest.approx(1 - (1 - CONF_NORMALISED) * (1 - CONF_COUNTRY))
    assert f.evidence["U.S."] == ["normalised", "country_code"]
    assert f.unmapped == {"Atlantis": 1}
    assert f.details["country_codes"] is True
    assert f.rows_affected == 10


def test_country_codes_map_back_to_training_names():
    f = vocabulary_skew(S(["United States", "Germany"]), S(["US", "DE", "deu"]), "country")
    assert f.mapping == {"US": "United States", "DE": "Germany", "deu": "Germany"}


def test_non_country_vocabulary_is_not_resolved_as_countries():
    f = vocabulary_skew(S(["free", "pro", "basic"]), S(["Peru", "enterprise"]), "plan", methods=("country",))
    assert f.mapping == {} and f.details["country_codes"] is False


def _entity_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    t0 = pd.Timestamp("2026-01-05")
    train = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(12)],
            "event_time": [t0] * 12,
            "device": ["ios"] * 10 + ["android"] * 2,
            "plan": ["free"] * 12,
            "amount": [1.0] * 12,
            "flag": [True] * 12,
        }
    )
    users = [f"u{i}" for i in range(10)] + ["u10"] * 6 + ["u11"] + ["u0"] * 3 + ["u10"] * 7
    devices = ["iPhone OS"] * 10 + ["Droid"] * 6 + ["Robot"] + ["Tab"] * 10
    n = len(users)
    serve = pd.DataFrame(
        {
            "user_id": users,
            "event_time": [t0 + pd.Timedelta(days=7)] * n,
            "device": devices,
            "plan": ["free"] * n,
            "amount": [1.0] * n,
            "flag": [True] * n,
        }
    )
    return train, serve


def test_entity_join_suggests_the_value_the_same_entity_had_in_training():
    train, serve = _entity_frames()
    report = skew_check(train, serve, CONTRACT, methods=("entity",))
    (f,) = report.for_feature("device", "vocabulary")
    # iPhone OS: 10 users, all ios -> 10/10 * min(1, 10/10); Droid: 6 rows of u10 (android) -> 1 * 0.6;
    # Tab: 3 rows ios, 7 rows android -> 0.7 * 1; Robot: 1 row -> 1 * 0.1 < 0.5, not mapped.
    assert f.mapping == {"iPhone OS": "ios", "Tab": "android", "Droid": "android"}
    assert f.confidence == {"iPhone OS": 1.0, "Tab": 0.7, "Droid": 0.6}
    assert f.evidence["Tab"] == ["entity_join(7/10)"]
    assert f.unmapped == {"Robot": 1}
    assert report.joined_rows == 0  # different times: no row-level join


# -- severity -------------------------------------------------------------------------------


@pytest.mark.parametrize(("unseen", "expected"), [(1, "low"), (2, "medium"), (20, "high")])
def test_closed_vocabulary_severity_follows_the_share_of_rows(unseen, expected):
    serving = S(["free"] * (2000 - unseen) + ["gold"] * unseen)  # shares 0.0005, 0.001, 0.01
    f = vocabulary_skew(S(["free", "pro"]), serving, "plan", vocabulary=["free", "pro"], closed=True)
    assert f.severity == expected and f.rows_affected == unseen
    assert f.share_affected == pytest.approx(unseen / 2000)


@pytest.mark.parametrize(("new", "expected"), [(40, "low"), (50, "medium")])
def test_new_values_in_an_open_vocabulary_are_low_until_many(new, expected):
    serving = S(["ios"] * (1000 - new) + [f"brand-new-{i % 3}" for i in range(new)])
    f = vocabulary_skew(S(["ios", "android"]), serving, "device")
    assert f.mapping == {} and f.severity == expected


def test_thresholds_are_configurable():
    serving = S(["free"] * 999 + ["gold"])
    f = vocabulary_skew(
        S(["free"]), serving, "plan", vocabulary=["free"], closed=True, thresholds=SkewThresholds(medium_share=0.0005)
    )
    assert f.severity == "medium"


# -- scale ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "fix"), [(100.0, "divide serving amount by 100"), (0.001, "multiply serving amount by 1000")]
)
def test_scale_change_is_found_with_its_factor(factor, fix):
    rng = np.random.default_rng(0)
    training = pd.Series(rng.lognormal(3.0, 0.5, 5000))
    serving = pd.Series(rng.lognormal(3.0, 0.5, 4000) * factor)
    f = scale_skew(training, serving, "amount")
    assert f.kind == "scale" and f.factor == factor and f.severity == "high"
    assert f.rows_affected == 4000 and f.share_affected == 1.0
    assert f.suggested_fix.startswith(fix)
    independent = np.median(serving) / np.median(training)
    assert f.details["measured_ratio"] == pytest.approx(independent, rel=0.05)


def test_percent_versus_fraction():
    rng = np.random.default_rng(1)
    f = scale_skew(pd.Series(rng.uniform(0, 1, 2000)), pd.Series(rng.uniform(0, 1, 2000) * 100), "rate")
    assert f.factor == 100.0 and "percent vs fraction" in f.summary


def test_zero_inflated_counts_scale_is_found_from_the_non_zero_statistics():
    rng = np.random.default_rng(2)
    training = pd.Series(rng.poisson(0.3, 5000).astype(float))
    serving = pd.Series(rng.poisson(0.3, 5000) * 100.0)
    assert scale_skew(training, serving, "tickets").factor == 100.0


@pytest.mark.parametrize("change", ["same", "drift_x1.3", "shift_plus_10"])
def test_no_scale_finding_without_a_unit_change(change):
    rng = np.random.default_rng(3)
    training = rng.lognormal(3.0, 0.5, 5000)
    serving = rng.lognormal(3.0, 0.5, 5000)
    if change == "drift_x1.3":
        serving = serving * 1.3
    elif change == "shift_plus_10":
        serving = serving + 10
    assert scale_skew(pd.Series(training), pd.Series(serving), "amount") is None


def test_scale_ratio_needs_enough_rows_and_ignores_nan():
    t = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert scale_ratio(t, t * 10, SkewThresholds(min_rows=5)) is None  # 4 finite values < 5
    found = scale_ratio(t, t * 10, SkewThresholds(min_rows=4))
    assert found["ratio"] == pytest.approx(10.0) and found["statistics_used"] == 8


# -- row level ------------------------------------------------------------------------------


def test_row_level_share_of_joined_rows_that_differ():
    joined = pd.DataFrame(
        {
            "amount__serving": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0000000001],
            "amount__training": [1.0, 2.5, 3.0, np.nan, np.nan, 6.0],
            "device__serving": S(["a", "B", "c", None, "d", "e"]),
            "device__training": S(["a", "b", "c", None, "d", "e"]),
            "flag__serving": S([True, False, None, True, True, False]),
            "flag__training": S([True, True, None, 1, True, False]),
        }
    )
    num = row_level_skew(joined, "amount", "numeric")
    assert (num.rows_affected, num.share_affected, num.severity) == (2, pytest.approx(2 / 6), "high")
    cat = row_level_skew(joined, "device", "categorical")
    assert (cat.rows_affected, cat.mapping) == (1, {"B": "b"})
    assert cat.details["examples"] == [{"serving": "B", "training": "b", "rows": 1}]
    flag = row_level_skew(joined, "flag", "boolean")
    assert flag.rows_affected == 1  # 1 and True are the same boolean
    same = joined.assign(amount__serving=joined["amount__training"])
    assert row_level_skew(same, "amount", "numeric") is None


def test_row_level_join_on_entity_and_time_finds_a_per_row_unit_factor():
    t0 = pd.Timestamp("2026-01-05")
    n = 40
    base = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "event_time": t0 + pd.to_timedelta(np.arange(n), unit="h"),
            "device": ["ios", "android"] * (n // 2),
            "plan": ["free"] * n,
            "amount": np.arange(1.0, n + 1),
            "flag": [True, False] * (n // 2),
        }
    )
    serving = base.copy()
    serving.loc[[3, 8, 21], "amount"] *= 1000
    report = skew_check(base, serving, CONTRACT)
    assert report.joined_rows == n and report.join_keys == ["user_id", "event_time"]
    (f,) = report.findings
    assert (f.kind, f.feature, f.rows_affected, f.factor) == ("row_level", "amount", 3, 1000.0)
    assert f.share_affected == pytest.approx(3 / n) and f.severity == "high"


# -- the report -----------------------------------------------------------------------------


def test_report_json_and_markdown_carry_the_mapping():
    train, serve = _entity_frames()
    serve = serve.drop(columns=["flag"])
    report = skew_check(train, serve, CONTRACT)
    assert report.skipped == {"flag": "missing in serving"}
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["severity_counts"] == {"low": 0, "medium": 0, "high": 1}
    (f,) = d["findings"]
    md = report.to_markdown()
    block = md.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == f["mapping"]
    assert "| high | vocabulary | device |" in md and "Not checked: flag (missing in serving)" in md


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown skew method"):
        skew_check(pd.DataFrame(), pd.DataFrame(), CONTRACT, methods=("magic",))


def test_no_vocabulary_finding_when_serving_uses_training_values():
    assert vocabulary_skew(S(["a", "b"]), S(["b", "a", None]), "x") is None


# -- category codes written as numbers ----------------------------------------------------

MCC = parse_contract(
    {
        "name": "cards",
        "entity_id": "account",
        "timestamp": "ts",
        "target": {"name": "fraud"},
        "features": {
            "MCC": {"type": "categorical", "nullable": True, "vocabulary": [4111, 5411, 5812, 7995], "closed": True},
            "present": {"type": "boolean"},
        },
    }
)


def _mcc(codes, present, times=None) -> pd.DataFrame:
    n = len(codes)
    return pd.DataFrame(
        {
            "account": [f"a{i}" for i in range(n)],
            "ts": times if times is not None else pd.Timestamp("2026-03-02") + pd.to_timedelta(np.arange(n), unit="h"),
            "MCC": codes,
            "present": present,
        }
    )


def test_int_codes_against_float_codes_are_no_skew():
    codes = [4111, 5411, 5812, 7995] * 5
    train = _mcc(pd.array([*codes[:-1], None], dtype="Int64"), [True, False] * 10)
    serve = _mcc([float(c) for c in codes[:-1]] + [np.nan], [1, 0] * 10)  # floats (a gap), booleans as 1/0
    report = skew_check(train, serve, MCC)
    assert report.findings == [] and report.joined_rows == 20


def test_float_codes_outside_a_closed_vocabulary_are_named_without_the_point_zero():
    train = _mcc([4111, 5411] * 10, [True] * 20)
    serve = _mcc([4111.0] * 19 + [9999.0], ["yes"] * 20)
    f = vocabulary_skew(train["MCC"], serve["MCC"], "MCC", vocabulary=MCC.features["MCC"].vocabulary, closed=True)
    assert (f.rows_affected, f.unmapped, f.severity) == (1, {"9999": 1}, "high")  # 1/20 = 5% >= 1%


def test_unix_time_on_one_side_joins_with_datetimes_on_the_other():
    times = pd.Timestamp("2026-03-02") + pd.to_timedelta(np.arange(20), unit="h")
    train = _mcc([4111, 5411] * 10, [True, False] * 10, times=times)
    epoch_ms = (times - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)
    serve = _mcc([4111, 5411] * 10, ["true", "NO"] * 10, times=np.asarray(epoch_ms, dtype=np.int64))
    report = skew_check(train, serve, MCC)
    assert report.joined_rows == 20 and report.findings == []
