"""driftline.values: one reading of category codes, booleans and timestamps for every component."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from driftline.errors import InputError
from driftline.training import normalise_features
from driftline.values import (
    EPOCH_MAX_SECONDS,
    EPOCH_MIN_SECONDS,
    bool_value,
    category_text,
    category_value,
    epoch_unit,
    parse_bool,
    parse_times,
)

SCALARS = [4111.0, 4111, np.float32(5.0), np.int64(7), 7.5, "4111.0", " US ", True, False, np.True_, "x", -0.0]


@pytest.mark.parametrize("value", SCALARS)
def test_training_reads_categories_as_category_value(value):
    trained = normalise_features(pd.DataFrame({"f": pd.Series([value], dtype=object)}), [("f", "categorical")])
    assert category_value(value) == trained["f"].iloc[0]


def test_drift_sees_float_and_int_codes_and_text_booleans_as_the_same_values(tiny_contract):
    """The drift engine counts with the same reading: 4111.0 is the code 4111, "1.0" is true."""
    from driftline.contract import parse_contract
    from driftline.drift import compare, fit_profile
    from driftline.settings import DriftSettings

    data = tiny_contract.model_dump(mode="json")
    data["features"]["country"] = {"type": "categorical"}
    contract = parse_contract(data)
    n = 400
    reference = pd.DataFrame(
        {
            "country": np.tile([4111.0, 5411.0], n // 2),
            "plan": "free",
            "tenure_days": np.arange(n, dtype=float),
            "score_hint": 0.5,
            "auto_renew": np.tile([True, False], n // 2),
        }
    )
    current = reference.assign(country=np.tile([4111, 5411], n // 2), auto_renew=np.tile(["1.0", "0.0"], n // 2))
    report = compare(fit_profile(reference, contract, DriftSettings()), current, DriftSettings(), contract)
    assert report.features["country"].unseen_share == 0 and report.features["country"].psi == pytest.approx(0)
    assert report.features["auto_renew"].missing_share == 0 and report.features["auto_renew"].psi == pytest.approx(0)


def test_category_value_examples():
    assert [category_value(v) for v in (4111.0, 4111, 7.5, True, np.False_, "4111.0", -0.0)] == [
        "4111",
        "4111",
        "7.5",
        "True",
        "False",
        "4111.0",  # text stays as written
        "0",
    ]


def test_category_text_float_codes_with_missing():
    s = pd.Series([4111.0, np.nan, 5411.0, 7995.0], index=[10, 11, 12, 13], name="MCC")
    out = category_text(s)
    assert out.dtype == object and out.name == "MCC" and list(out.index) == [10, 11, 12, 13]
    assert out.iloc[[0, 2, 3]].tolist() == ["4111", "5411", "7995"]
    assert np.isnan(out.iloc[1])


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([4111, 5411], "int64", ["4111", "5411"]),
        ([4111, None], "Int64", ["4111", None]),
        ([True, None], "boolean", ["True", None]),
        (["a", None], "str", ["a", None]),
        (["a", None], "string", ["a", None]),
        (["x", "y", "x"], "category", ["x", "y", "x"]),
        ([True, 1, 1.0, 0, False, "1"], object, ["True", "1", "1", "0", "False", "1"]),  # True == 1 for hashing
    ],
)
def test_category_text_dtypes(values, dtype, expected):
    out = category_text(pd.Series(values, dtype=dtype))
    assert [None if pd.isna(v) else v for v in out] == expected


def test_category_text_strip_makes_empty_text_missing():
    out = category_text(pd.Series([" free ", "", "  ", "pro", None]), strip=True)
    assert [None if pd.isna(v) else v for v in out] == ["free", None, None, "pro", None]
    assert category_text(pd.Series([" free "])).tolist() == [" free "]  # kept without strip


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (np.False_, False),
        (1, True),
        (0.0, False),
        (2, None),
        ("yes", True),
        (" No ", False),
        ("TRUE", True),
        ("f", False),
        ("1.0", True),
        ("0", False),
        ("maybe", None),
        (None, None),
    ],
)
def test_bool_value(value, expected):
    assert bool_value(value) is expected


def test_parse_bool_text_and_numbers():
    vals, bad = parse_bool(pd.Series(["yes", "No", " TRUE ", "maybe", None, 1, 0.0, 2], dtype=object))
    assert [None if pd.isna(v) else bool(v) for v in vals] == [True, False, True, None, None, True, False, None]
    assert bad.tolist() == [False, False, False, True, False, False, False, True]
    vals, bad = parse_bool(pd.Series([1, 0, 1]))
    assert vals.dtype == "boolean" and vals.tolist() == [True, False, True] and not bad.any()
    vals, bad = parse_bool(pd.Series([1.0, np.nan, 2.0]))
    assert [None if pd.isna(v) else bool(v) for v in vals] == [True, None, None]
    assert bad.tolist() == [False, False, True]


# -- timestamps -------------------------------------------------------------------------


def test_epoch_unit_by_magnitude():
    t = 1_772_406_008  # 2026-03-01T23:00:08Z
    assert [epoch_unit(np.array([t * k])) for k in (1, 10**3, 10**6, 10**9)] == ["s", "ms", "us", "ns"]
    assert epoch_unit(np.array([1, 2, 3])) is None
    assert epoch_unit(np.array([EPOCH_MIN_SECONDS - 1])) is None
    assert epoch_unit(np.array([EPOCH_MIN_SECONDS])) == "s"
    assert epoch_unit(np.array([EPOCH_MAX_SECONDS - 1])) == "s"
    assert epoch_unit(np.array([EPOCH_MAX_SECONDS])) is None  # too late for seconds, too early for ms
    assert epoch_unit(np.array([np.nan])) is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1_772_406_008], "2026-03-01 23:00:08"),
        ([1_772_406_008_123], "2026-03-01 23:00:08.123"),
        ([1_772_406_008_123_456], "2026-03-01 23:00:08.123456"),
        ([1_772_406_008_123_456_789], "2026-03-01 23:00:08.123456"),  # below a microsecond is dropped
        ([1_772_406_008.5], "2026-03-01 23:00:08.5"),
        (["1772406008"], "2026-03-01 23:00:08"),  # a text column of numbers
    ],
)
def test_unix_times_in_every_unit(values, expected):
    out = parse_times(pd.Series(values))
    assert out.dtype == "datetime64[us]"
    assert out.iloc[0] == pd.Timestamp(expected)


def test_reference_instant_from_the_stdlib():
    """The instant the cases above use, computed without pandas."""
    assert dt.datetime(2026, 3, 1, 23, 0, 8, tzinfo=dt.UTC).timestamp() == 1_772_406_008


def test_unix_times_outside_the_unit_are_nat_and_nulls_stay_null():
    out = parse_times(pd.Series([1_772_406_008, 1_772_406_009, 1_772_406_008_000, None], dtype="Int64"))
    assert out.iloc[:2].tolist() == [pd.Timestamp("2026-03-01 23:00:08"), pd.Timestamp("2026-03-01 23:00:09")]
    assert out.iloc[2:].isna().all()


def test_numbers_that_are_not_unix_times_are_refused_naming_the_column():
    with pytest.raises(InputError) as e:
        parse_times(pd.Series([1, 2, 3]), "data.csv: timestamp column 'ts'")
    assert str(e.value).startswith("data.csv: timestamp column 'ts' holds numbers that are not Unix times")
    assert "store ISO-8601 text or a datetime column" in str(e.value)


def test_text_and_datetimes():
    out = parse_times(pd.Series(["2026-01-01T00:00:00+01:00", "2026-01-02 10:00", "junk", None]))
    assert out.tolist()[:2] == [pd.Timestamp("2025-12-31 23:00"), pd.Timestamp("2026-01-02 10:00")]
    assert out.iloc[2:].isna().all()
    aware = pd.Series(pd.to_datetime(["2026-03-02 01:00"]).tz_localize("Europe/Berlin"))
    assert parse_times(aware).tolist() == [pd.Timestamp("2026-03-02 00:00")]
