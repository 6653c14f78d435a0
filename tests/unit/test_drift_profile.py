"""Reference profile: bins from the reference only, vocabularies, buckets, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline.contract import Contract, parse_contract
from driftline.drift import Profile, fit_profile
from driftline.drift.counts import count_window
from driftline.errors import InputError
from driftline.settings import DriftSettings
from tests.conftest import TINY_CONTRACT


def retyped(contract: Contract) -> Contract:
    """The same contract with one feature retyped: other columns, so profiles must not match."""
    data = contract.model_dump(mode="json")
    data["features"]["score_hint"] = {"type": "categorical", "nullable": True}
    return parse_contract(data)


def frame(n: int = 10) -> pd.DataFrame:
    """Ten rows: tenure 1..10, known countries and plans, one missing score hint."""
    return pd.DataFrame(
        {
            "country": ["US"] * 5 + ["GB"] * 3 + ["DE"] * 2,
            "plan": ["free"] * 6 + ["pro"] * 4,
            "tenure_days": np.arange(1, 11, dtype=float),
            "score_hint": [0.5] * 9 + [np.nan],
            "auto_renew": [True] * 7 + [False] * 3,
        }
    ).head(n)


def test_numeric_edges_are_reference_quantiles(tiny_contract: Contract) -> None:
    p = fit_profile(frame(), tiny_contract, DriftSettings(bins=5))
    fp = p.features["tenure_days"]
    # inverted-CDF quantiles at 0.2, 0.4, 0.6, 0.8 of 1..10
    assert fp.edges.tolist() == [2.0, 4.0, 6.0, 8.0]
    assert fp.counts.tolist() == [2, 2, 2, 2, 2, 0]  # five bins + missing
    assert (fp.low, fp.high) == (1.0, 10.0)
    assert fp.labels() == ["≤ 2", "(2, 4]", "(4, 6]", "(6, 8]", "> 8", "missing"]


def test_current_values_land_in_reference_bins(tiny_contract: Contract) -> None:
    p = fit_profile(frame(), tiny_contract, DriftSettings(bins=5))
    cur = frame(6).assign(tenure_days=[0.0, 3.0, 3.0, 9.0, 100.0, np.nan])
    wc = count_window(p, cur, ["tenure_days"])
    fc = wc.features["tenure_days"]
    assert fc.counts.tolist() == [1, 2, 0, 0, 2, 1]
    assert (fc.below, fc.above) == (1, 1)


def test_constant_and_tied_columns(tiny_contract: Contract) -> None:
    ref = frame()
    ref["score_hint"] = 0.5  # constant
    ref["tenure_days"] = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2]  # heavy ties
    p = fit_profile(ref, tiny_contract, DriftSettings(bins=10))
    const = p.features["score_hint"]
    assert const.edges.tolist() == [0.5]
    assert const.counts.tolist() == [10, 0, 0]
    tied = p.features["tenure_days"]
    # deciles of seven 0s, two 1s and one 2: 0 (x7), then 1 (0.8 and 0.9) -> two distinct edges
    assert tied.edges.tolist() == [0.0, 1.0]
    assert tied.counts.tolist() == [7, 2, 1, 0]
    wc = count_window(p, ref.assign(score_hint=[0.5] * 8 + [0.7, np.nan]), ["score_hint"])
    assert wc.features["score_hint"].counts.tolist() == [8, 1, 1]


def test_all_missing_numeric_column(tiny_contract: Contract) -> None:
    p = fit_profile(frame().assign(score_hint=np.nan), tiny_contract, DriftSettings())
    fp = p.features["score_hint"]
    assert fp.edges.tolist() == [] and fp.counts.tolist() == [0, 10]
    assert fp.labels() == ["all values", "missing"]


def test_categorical_vocabulary_unseen_and_missing(tiny_contract: Contract) -> None:
    ref = frame()
    ref.loc[0, "country"] = None
    p = fit_profile(ref, tiny_contract, DriftSettings())
    fp = p.features["country"]
    # Seen values by frequency, then contract vocabulary, then unseen and missing buckets.
    assert fp.vocabulary == ["US", "GB", "DE"]
    assert fp.counts.tolist() == [4, 3, 2, 0, 1]
    cur = frame(6).assign(country=["US", "United States", "United States", "FR", None, "GB"])
    wc = count_window(p, cur, ["country"])
    fc = wc.features["country"]
    assert fc.counts.tolist() == [1, 1, 0, 3, 1]
    assert dict(fc.unseen) == {"United States": 2, "FR": 1}


def test_contract_vocabulary_not_seen_gets_a_zero_bucket() -> None:
    data = json.loads(json.dumps(TINY_CONTRACT))
    data["features"]["country"]["vocabulary"] = ["US", "GB", "DE", "JP"]
    p = fit_profile(frame(), parse_contract(data), DriftSettings())
    assert p.features["country"].vocabulary == ["US", "GB", "DE", "JP"]
    assert p.features["country"].counts.tolist() == [5, 3, 2, 0, 0, 0]


def test_boolean_spellings(tiny_contract: Contract) -> None:
    p = fit_profile(frame(), tiny_contract, DriftSettings())
    fp = p.features["auto_renew"]
    assert fp.vocabulary == ["false", "true"] and fp.counts.tolist() == [3, 7, 0, 0]
    cur = frame(6).assign(auto_renew=["true", "False", "1", "0", "maybe", None])
    assert count_window(p, cur, ["auto_renew"]).features["auto_renew"].counts.tolist() == [2, 2, 1, 1]


def test_integral_floats_match_string_vocabulary() -> None:
    data = json.loads(json.dumps(TINY_CONTRACT))
    data["features"]["plan"] = {"type": "categorical", "vocabulary": ["1", "2"]}
    con = parse_contract(data)
    ref = frame().assign(plan=[1, 2] * 5)
    p = fit_profile(ref, con, DriftSettings())
    cur = frame(4).assign(plan=[1.0, 2.0, np.nan, 3.0])  # as read from a CSV with a gap
    assert count_window(p, cur, ["plan"]).features["plan"].counts.tolist() == [1, 1, 1, 1]


def test_json_round_trip_is_lossless(tiny_contract: Contract, tmp_path) -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame(
        {
            "country": rng.choice(["US", "GB", "DE"], 600),
            "plan": rng.choice(["free", "pro"], 600),
            "tenure_days": rng.exponential(300, 600),
            "score_hint": rng.normal(size=600) / 3,
            "auto_renew": rng.random(600) < 0.4,
            "score": rng.random(600),
            "churned": rng.integers(0, 2, 600),
        }
    )
    p = fit_profile(ref, tiny_contract, DriftSettings(segment_min_rows=100), "score", "churned", threshold=0.3)
    assert p.score is not None and p.label is not None and p.performance is not None
    assert p.segments is not None and set(p.segments.values) == {"US", "GB", "DE"}
    text = p.to_json()
    back = Profile.from_json(text)
    assert back == p
    assert back.to_json() == text
    assert np.array_equal(back.features["tenure_days"].edges, p.features["tenure_days"].edges)
    path = p.save(tmp_path / "sub" / "profile.json")
    assert Profile.load(path) == p
    assert json.loads(text)["contract"]["fingerprint"] == tiny_contract.schema_fingerprint()


def test_bad_profiles_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        Profile.from_json("{", "p.json")
    with pytest.raises(InputError, match="not a driftline profile"):
        Profile.from_json('{"a": 1}', "p.json")
    with pytest.raises(InputError, match="version 99 is not supported"):
        Profile.from_json('{"format": "driftline.profile", "version": 99}', "p.json")
    with pytest.raises(InputError, match="malformed profile"):
        Profile.from_json('{"format": "driftline.profile", "version": 1}', "p.json")
    with pytest.raises(InputError, match="cannot read profile"):
        Profile.load(tmp_path / "absent.json")


def test_profile_checks_contract(tiny_contract: Contract) -> None:
    p = fit_profile(frame(), tiny_contract, DriftSettings())
    p.check_contract(tiny_contract)
    p.check_contract(tiny_contract.model_copy(update={"name": "renamed"}))  # a name is no column
    tuned = tiny_contract.model_dump(mode="json")
    tuned["features"]["tenure_days"]["drift"] = {"warn": 0.2}
    p.check_contract(parse_contract(tuned))  # thresholds are read from the contract in force
    with pytest.raises(InputError, match="fitted for contract 'tiny'"):
        p.check_contract(retyped(tiny_contract))


def test_fit_rejects_unusable_reference(tiny_contract: Contract) -> None:
    with pytest.raises(InputError, match="no rows"):
        fit_profile(frame().head(0), tiny_contract, DriftSettings())
    with pytest.raises(InputError, match="missing feature column"):
        fit_profile(frame().drop(columns="plan"), tiny_contract, DriftSettings())
    with pytest.raises(InputError, match="score column 'nope'"):
        fit_profile(frame(), tiny_contract, DriftSettings(), score_column="nope")
