"""The GX suite generated from the contract, run with real GX objects on small seeded frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.settings import DriftSettings
from driftline.validation import build_suite, numeric_reference, validate_frame
from driftline.validation.suite import BOOLEAN_VALUES, NUMERIC_TYPES
from tests.conftest import TINY_CONTRACT


def _frame(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{i:03d}" for i in range(n)],
            "user_id": [f"u{i % 4}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 3600, unit="s"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n).astype(float),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )


def _failed(result) -> set[str]:
    return {e.label for e in result.expectations if not e.success}


# -- the suite the contract implies -------------------------------------------------------


def test_suite_has_exactly_the_expectations_the_contract_implies(tiny_contract):
    suite = build_suite(tiny_contract)
    got = [(e.expectation_type, dict(e.configuration.kwargs)) for e in suite.expectations]
    expected = [
        ("expect_table_row_count_to_be_between", {"min_value": 1}),
        *[
            ("expect_column_to_exist", {"column": c})
            for c in [
                "request_id",
                "user_id",
                "event_time",
                "country",
                "plan",
                "tenure_days",
                "score_hint",
                "auto_renew",
            ]
        ],
        ("expect_column_values_to_not_be_null", {"column": "request_id"}),
        ("expect_column_values_to_be_unique", {"column": "request_id"}),
        ("expect_column_values_to_not_be_null", {"column": "user_id"}),
        ("expect_column_values_to_not_be_null", {"column": "event_time"}),
        ("expect_column_values_to_be_of_type", {"column": "event_time", "type_": "datetime64"}),
        # country: categorical, open vocabulary -> not-null only (codes may be text or numbers)
        ("expect_column_values_to_not_be_null", {"column": "country"}),
        # plan: closed vocabulary -> value set
        ("expect_column_values_to_not_be_null", {"column": "plan"}),
        ("expect_column_values_to_be_in_set", {"column": "plan", "value_set": ["free", "pro"]}),
        # tenure_days: numeric with a range, tolerance 0
        ("expect_column_values_to_be_in_type_list", {"column": "tenure_days", "type_list": NUMERIC_TYPES}),
        ("expect_column_values_to_not_be_null", {"column": "tenure_days"}),
        ("expect_column_values_to_be_between", {"column": "tenure_days", "min_value": 0.0, "max_value": 1000.0}),
        # score_hint: nullable numeric, no range -> type only
        ("expect_column_values_to_be_in_type_list", {"column": "score_hint", "type_list": NUMERIC_TYPES}),
        ("expect_column_values_to_be_in_set", {"column": "auto_renew", "value_set": [True, False]}),
        ("expect_column_values_to_not_be_null", {"column": "auto_renew"}),
    ]
    assert got == expected
    assert BOOLEAN_VALUES == [True, False]
    levels = {e.meta["driftline_level"] for e in suite.expectations}
    assert levels == {"batch", "row"}


def test_range_tolerance_widens_the_range_by_a_share_of_its_width():
    c = parse_contract({**TINY_CONTRACT, "range_tolerance": 0.1})
    between = [e for e in build_suite(c, min_rows=50).expectations if e.expectation_type.endswith("_between")]
    kw = {e.expectation_type: dict(e.configuration.kwargs) for e in between}
    assert kw["expect_column_values_to_be_between"] == {
        "column": "tenure_days",
        "min_value": -100.0,
        "max_value": 1100.0,
    }
    assert kw["expect_table_row_count_to_be_between"] == {"min_value": 50}


def test_profile_adds_quantile_expectations_from_the_fitted_reference(tiny_contract):
    from driftline.drift.profile import fit_profile

    ref = _frame(400, seed=1)
    profile = fit_profile(ref, tiny_contract, DriftSettings())
    suite = build_suite(tiny_contract, profile, tolerance=0.5)
    dist = [e for e in suite.expectations if e.meta["driftline_level"] == "distribution"]
    assert [(e.expectation_type, e.configuration.kwargs["column"]) for e in dist] == [
        ("expect_column_quantiles_near_reference", "tenure_days"),
        ("expect_column_quantiles_near_reference", "score_hint"),
    ]
    for e in dist:
        col = e.configuration.kwargs["column"]
        x = ref[col].to_numpy()
        q = np.quantile(x, [0.1, 0.5, 0.9], method="inverted_cdf")  # independent of the profile code
        width = 0.5 * (q[2] - q[0])
        kw = e.configuration.kwargs["quantile_ranges"]
        assert kw["quantiles"] == [0.1, 0.5, 0.9]
        np.testing.assert_allclose(np.asarray(kw["value_ranges"]), np.c_[q - width, q + width], rtol=1e-12)
        assert e.severity == "warning"


def test_profile_with_other_bins_uses_its_own_quantile_levels(tiny_contract):
    from driftline.drift.profile import fit_profile

    ref = _frame(300, seed=4)
    profile = fit_profile(ref, tiny_contract, DriftSettings(bins=4))
    r = numeric_reference(profile, "tenure_days")
    q = np.quantile(ref["tenure_days"], [0.25, 0.5, 0.75], method="inverted_cdf")
    assert r.quantiles == tuple(zip([0.25, 0.5, 0.75], q.tolist(), strict=True))
    assert r.spread == q[2] - q[0] and r.mean is None
    assert numeric_reference(profile, "country") is None


def test_profile_summary_interface_adds_mean_and_quantiles(tiny_contract):
    summary = {"tenure_days": {"mean": 500.0, "std": 100.0, "q05": 50.0, "q50": 480.0, "q95": 950.0}}
    ref = numeric_reference(summary, "tenure_days")
    assert ref.spread == 100.0 and ref.mean == 500.0
    suite = build_suite(tiny_contract, {"features": summary}, tolerance=0.2)
    dist = {
        e.expectation_type: dict(e.configuration.kwargs)
        for e in suite.expectations
        if e.meta["driftline_level"] == "distribution"
    }
    assert dist["expect_column_mean_to_be_between"] == {"column": "tenure_days", "min_value": 480.0, "max_value": 520.0}
    assert dist["expect_column_quantiles_near_reference"]["quantile_ranges"] == {
        "quantiles": [0.05, 0.5, 0.95],
        "value_ranges": [[30.0, 70.0], [460.0, 500.0], [930.0, 970.0]],
    }

    class SummaryProfile:
        def numeric_summary(self, name: str) -> dict | None:
            return summary.get(name)

    via_method = build_suite(tiny_contract, SummaryProfile(), tolerance=0.2)
    assert [e.configuration.kwargs for e in via_method.expectations] == [
        e.configuration.kwargs for e in suite.expectations
    ]


def test_profile_for_another_contract_is_refused(tiny_contract):
    from driftline.drift.profile import fit_profile

    other = parse_contract({**TINY_CONTRACT, "name": "other"})
    profile = fit_profile(_frame(50), other, DriftSettings())
    other_columns = parse_contract(
        {**TINY_CONTRACT, "name": "other", "features": {**TINY_CONTRACT["features"], "extra": {"type": "numeric"}}}
    )
    profile.contract_fingerprint = other_columns.schema_fingerprint()  # as if fitted for other columns
    with pytest.raises(InputError, match="fitted for contract 'other'"):
        build_suite(tiny_contract, profile)


# -- each fault fails the right expectation and nothing else -------------------------------


def test_clean_batch_passes(tiny_contract):
    r = validate_frame(_frame(), tiny_contract)
    assert r.success and _failed(r) == set() and r.batch_error is None
    assert r.failed_row_mask().isna().all()
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["statistics"]["evaluated_expectations"] == 23 == d["statistics"]["successful_expectations"]


def test_nullable_column_may_hold_nulls(tiny_contract):
    f = _frame()
    f.loc[[1, 2], "score_hint"] = np.nan
    assert validate_frame(f, tiny_contract).success


@pytest.mark.parametrize(
    ("fault", "label", "rows", "examples"),
    [
        ("null", "expect_column_values_to_not_be_null:tenure_days", [3], [None]),
        ("range", "expect_column_values_to_be_between:tenure_days", [2, 5], [5000.0, -1.0]),
        ("vocabulary", "expect_column_values_to_be_in_set:plan", [4], ["gold"]),
        ("duplicate", "expect_column_values_to_be_unique:request_id", [7], ["r001"]),
        ("missing_user", "expect_column_values_to_not_be_null:user_id", [0], [None]),
        ("code_outside_closed", "expect_column_values_to_be_in_set:plan", [6], ["7"]),
        ("unreadable_bool", "expect_column_values_to_be_in_set:auto_renew", [1, 8], ["maybe", 2]),
    ],
)
def test_row_level_fault_fails_only_its_expectation(tiny_contract, fault, label, rows, examples):
    f = _frame()
    if fault == "null":
        f.loc[3, "tenure_days"] = np.nan
    elif fault == "range":
        f.loc[2, "tenure_days"] = 5000.0
        f.loc[5, "tenure_days"] = -1.0
    elif fault == "vocabulary":
        f.loc[4, "plan"] = "gold"
    elif fault == "duplicate":
        f.loc[7, "request_id"] = "r001"
    elif fault == "missing_user":
        f.loc[0, "user_id"] = None
    elif fault == "code_outside_closed":
        f["plan"] = f["plan"].astype(object)
        f.loc[6, "plan"] = 7  # a numeric code is read as "7", which the closed vocabulary lacks
    elif fault == "unreadable_bool":
        f["auto_renew"] = f["auto_renew"].astype(object)
        f.loc[1, "auto_renew"] = "maybe"
        f.loc[8, "auto_renew"] = 2
    r = validate_frame(f, tiny_contract)
    assert not r.success
    assert _failed(r) == {label}
    assert r.batch_error is None
    (bad,) = r.failed
    assert bad.level == "row"
    assert sorted(bad.to_dict()["examples"], key=str) == sorted(examples, key=str)
    mask = r.failed_row_mask()
    assert mask.notna().to_numpy().nonzero()[0].tolist() == rows
    assert set(mask.dropna()) == {label}


def test_duplicate_request_id_reports_both_copies_but_marks_the_later(tiny_contract):
    f = _frame()
    f.loc[7, "request_id"] = "r001"
    r = validate_frame(f, tiny_contract)
    (bad,) = r.failed
    assert bad.unexpected_count == 2  # GX counts every copy
    assert r.failed_row_mask().notna().to_numpy().nonzero()[0].tolist() == [7]


@pytest.mark.parametrize(
    ("fault", "failed", "batch_error"),
    [
        (
            "missing_column",
            {
                "expect_column_to_exist:plan",
                "expect_column_values_to_not_be_null:plan",
                "expect_column_values_to_be_in_set:plan",
            },
            "missing column(s): plan",
        ),
        ("few_rows", {"expect_table_row_count_to_be_between"}, "row count 12 is below the minimum 20"),
        (
            "time_as_text",
            {"expect_column_values_to_be_of_type:event_time"},
            "column event_time has type str, expected datetime64",
        ),
    ],
)
def test_batch_level_fault_sets_batch_error(tiny_contract, fault, failed, batch_error):
    f = _frame()
    min_rows = 1
    if fault == "missing_column":
        f = f.drop(columns=["plan"])
    elif fault == "few_rows":
        min_rows = 20
    elif fault == "time_as_text":
        f["event_time"] = f["event_time"].astype(str)
    r = validate_frame(f, tiny_contract, min_rows=min_rows)
    assert not r.success
    assert _failed(r) == failed
    assert r.batch_error == batch_error
    # Expectations on a missing column say so instead of GX's internal error.
    for e in r.failed:
        if e.name != "expect_column_to_exist" and e.column == "plan":
            assert e.error == "column plan is missing"


def test_distribution_fault_fails_only_the_quantile_expectation(tiny_contract):
    from driftline.drift.profile import fit_profile

    profile = fit_profile(_frame(400, seed=1), tiny_contract, DriftSettings())
    f = _frame(200, seed=2)
    assert validate_frame(f, tiny_contract, profile).success
    f["score_hint"] = f["score_hint"] * 100
    r = validate_frame(f, tiny_contract, profile)
    assert _failed(r) == {"expect_column_quantiles_near_reference:score_hint"}
    (bad,) = r.failed
    assert bad.level == "distribution" and bad.severity == "warning"
    assert r.batch_error is None and r.failed_row_mask().isna().all()


def test_first_failed_rule_in_suite_order_and_original_index(tiny_contract):
    f = _frame()
    f.index = [f"row{i}" for i in range(len(f))]
    f.loc["row2", "plan"] = "gold"
    f.loc["row2", "tenure_days"] = np.nan  # tenure_days comes after plan in the contract
    f.loc["row9", "tenure_days"] = 9999.0
    r = validate_frame(f, tiny_contract)
    mask = r.failed_row_mask()
    assert list(mask.index) == list(f.index)
    assert mask.dropna().to_dict() == {
        "row2": "expect_column_values_to_be_in_set:plan",
        "row9": "expect_column_values_to_be_between:tenure_days",
    }


@pytest.mark.parametrize("dtype", ["int32", "Int64", "float32", "Float64", "uint8"])
def test_numeric_type_list_accepts_common_dtypes(tiny_contract, dtype):
    f = _frame()
    f["tenure_days"] = f["tenure_days"].astype(dtype)
    f["score_hint"] = (f["score_hint"] * 10).round().astype(dtype)
    assert validate_frame(f, tiny_contract).success


@pytest.mark.parametrize("dtype", ["object", "category", "string[python]"])
def test_categorical_type_accepts_string_dtypes(tiny_contract, dtype):
    f = _frame()
    f["country"] = f["country"].astype(dtype)
    f["auto_renew"] = f["auto_renew"].astype("boolean")
    assert validate_frame(f, tiny_contract).success


# -- values, not dtypes: category codes written as numbers, booleans written as text -------

MCC_CONTRACT = {
    "name": "cards",
    "entity_id": "account",
    "request_id": "txn",
    "timestamp": "ts",
    "target": {"name": "fraud", "positive": "yes"},
    "features": {
        "MCC": {"type": "categorical", "nullable": True, "vocabulary": [4111, 5411, 5812, 7995], "closed": True},
        "present": {"type": "boolean"},
    },
}


def _mcc(codes, present) -> pd.DataFrame:
    n = len(codes)
    return pd.DataFrame(
        {
            "txn": [f"t{i}" for i in range(n)],
            "account": [f"a{i % 3}" for i in range(n)],
            "ts": pd.Timestamp("2026-03-02") + pd.to_timedelta(np.arange(n), unit="h"),
            "MCC": codes,
            "present": present,
        }
    )


@pytest.mark.parametrize(
    "codes",
    [
        np.array([4111, 5411, 5812, 7995, 4111, 5411], dtype="int64"),
        np.array([4111.0, 5411.0, np.nan, 7995.0, 4111.0, 5411.0]),  # an int column with a gap
        pd.array([4111, 5411, None, 7995, 4111, 5411], dtype="Int64"),
        ["4111", " 5411", None, "7995", "4111", "5411 "],  # text, spaces stripped as ingest does
        pd.Series([4111, "5411", 5812.0, "7995", 4111, "5411"], dtype=object),
    ],
)
def test_numeric_category_codes_meet_a_closed_vocabulary(codes):
    c = parse_contract(MCC_CONTRACT)
    r = validate_frame(_mcc(codes, [True, False] * 3), c)
    assert r.success, _failed(r)
    assert r.batch_error is None


def test_a_float_code_outside_the_vocabulary_is_reported_as_its_text():
    c = parse_contract(MCC_CONTRACT)
    r = validate_frame(_mcc([4111.0, 9999.0, np.nan, 7995.0, 9999.0, 1.5], [True] * 6), c)
    assert _failed(r) == {"expect_column_values_to_be_in_set:MCC"}
    (bad,) = r.failed
    assert bad.unexpected_count == 3 and sorted(bad.examples) == ["1.5", "9999"]
    assert r.failed_row_mask().notna().to_numpy().nonzero()[0].tolist() == [1, 4, 5]


@pytest.mark.parametrize(
    "present",
    [
        [1, 0, 1, 0, 1, 1],
        [1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
        ["yes", "no", "YES", "No", "y", "n"],
        ["true", "false", "True", "FALSE", "t", "f"],
        ["1", "0", "1", "0", "1", "0"],
        pd.array([True, False, True, False, True, True], dtype="boolean"),
        np.array([True, False, True, False, True, True]),
    ],
)
def test_booleans_are_read_as_ingest_reads_them(present):
    c = parse_contract(MCC_CONTRACT)
    r = validate_frame(_mcc([4111] * 6, present), c)
    assert r.success, _failed(r)


def test_yes_no_text_passes_the_tiny_contract_and_the_frame_is_not_modified(tiny_contract):
    f = _frame()
    f["auto_renew"] = np.where(f["auto_renew"], "yes", "no")
    f["plan"] = f["plan"].astype(object)
    before = f.copy()
    assert validate_frame(f, tiny_contract).success
    pd.testing.assert_frame_equal(f, before)
