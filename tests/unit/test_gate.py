"""The promotion gate on validation and skew results (pure function, plain dict inputs)."""

from __future__ import annotations

import pytest

from driftline.validation import GateResult, SkewFinding, SkewReport, promotion_gate

OK_VALIDATION = {
    "success": True,
    "statistics": {},
    "expectations": [{"name": "expect_column_to_exist", "column": "plan", "success": True}],
    "batch_error": None,
}


def _skew(*findings: tuple[str, str, str]) -> dict:
    return {
        "findings": [
            {"kind": k, "feature": f, "severity": s, "rows_affected": 12, "suggested_fix": "fix it"}
            for k, f, s in findings
        ]
    }


def test_clean_results_pass(tiny_contract):
    g = promotion_gate(OK_VALIDATION, _skew(), tiny_contract)
    assert g == GateResult(blocked=False, reasons=[], warnings=[])
    assert g.passed and g.to_dict() == {"blocked": False, "reasons": [], "warnings": []}


def test_failed_suite_blocks_with_the_failed_expectations(tiny_contract):
    v = {
        "success": False,
        "expectations": [
            {"name": "expect_column_to_exist", "column": "plan", "success": True},
            {"name": "expect_column_values_to_be_in_set", "column": "plan", "success": False, "unexpected_count": 3},
        ],
        "batch_error": None,
    }
    g = promotion_gate(v, _skew(), tiny_contract)
    assert g.blocked
    assert g.reasons == [
        "validation failed: 1 of 2 expectations: expect_column_values_to_be_in_set(plan): 3 unexpected"
    ]


def test_batch_error_is_named(tiny_contract):
    v = {
        "success": False,
        "expectations": [{"name": "expect_column_to_exist", "column": "plan", "success": False}],
        "batch_error": "missing column(s): plan",
    }
    g = promotion_gate(v, None, tiny_contract)
    assert g.reasons[0] == "validation: batch unusable: missing column(s): plan"
    assert g.warnings == ["skew was not checked"]


@pytest.mark.parametrize(
    ("finding", "blocked"),
    [
        (("vocabulary", "country", "high"), True),  # country is a key feature in the tiny contract
        (("vocabulary", "country", "medium"), True),
        (("vocabulary", "country", "low"), False),
        (("scale", "tenure_days", "high"), False),  # not a key feature: a warning
    ],
)
def test_skew_blocks_only_on_key_features_at_medium_or_high(tiny_contract, finding, blocked):
    g = promotion_gate(OK_VALIDATION, _skew(finding), tiny_contract)
    assert g.blocked is blocked
    text = (g.reasons if blocked else g.warnings)[0]
    kind, feature, severity = finding
    assert text.startswith(f"{kind} skew on ") and f"feature {feature} ({severity}, 12 rows): fix it" in text


def test_block_severities_can_be_narrowed(tiny_contract):
    g = promotion_gate(
        OK_VALIDATION, _skew(("vocabulary", "country", "medium")), tiny_contract, block_severities=("high",)
    )
    assert not g.blocked and len(g.warnings) == 1


def test_missing_results_warn_but_do_not_block(tiny_contract):
    g = promotion_gate(None, None, tiny_contract)
    assert not g.blocked and g.warnings == ["validation was not run", "skew was not checked"]


def test_accepts_report_objects(tiny_contract):
    finding = SkewFinding(
        kind="vocabulary",
        feature="country",
        severity="high",
        rows_affected=5,
        share_affected=0.5,
        summary="",
        suggested_fix="map {'United States': 'US'}",
        mapping={"United States": "US"},
    )
    report = SkewReport(findings=[finding], training_rows=10, serving_rows=10, features_checked=["country"])
    g = promotion_gate(OK_VALIDATION, report, tiny_contract)
    assert g.blocked and g.reasons == [
        "vocabulary skew on key feature country (high, 5 rows): map {'United States': 'US'}"
    ]


def test_rejects_other_types(tiny_contract):
    with pytest.raises(TypeError, match="expected a result object or dict"):
        promotion_gate(42, None, tiny_contract)


def test_distribution_failures_can_be_warnings_only(tiny_contract):
    from driftline.validation import promotion_gate

    v = {
        "success": False,
        "batch_error": None,
        "expectations": [
            {
                "name": "expect_column_quantile_values_to_be_between",
                "column": "tenure_days",
                "success": False,
                "level": "distribution",
            },
            {"name": "expect_column_values_to_not_be_null", "column": "country", "success": True, "level": "row"},
        ],
    }
    strict = promotion_gate(v, None, tiny_contract)
    assert strict.blocked
    lenient = promotion_gate(v, None, tiny_contract, warn_levels=("distribution",))
    assert not lenient.blocked
    assert lenient.warnings[0].startswith(
        "validation warning: expect_column_quantile_values_to_be_between(tenure_days)"
    )
    v["expectations"][1]["success"] = False
    assert promotion_gate(v, None, tiny_contract, warn_levels=("distribution",)).blocked
