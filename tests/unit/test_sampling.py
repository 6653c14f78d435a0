"""Test-set refresh: stratified, tail-keeping, one row per entity, deterministic and hashed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.sampling import allocate, content_hash, dedupe_latest, refresh_test_set, tail_groups

CONTRACT = parse_contract(
    {
        "entity_id": "user_id",
        "request_id": "request_id",
        "timestamp": "event_time",
        "target": {"name": "churned", "positive": 1},
        "segment": "country",
        "features": {
            "country": {"type": "categorical", "key": True},
            "plan": {"type": "categorical"},
            "sessions": {"type": "numeric", "key": True},
            "tenure": {"type": "numeric"},
        },
    }
)
RARE = ["IS", "MT", "LU", "CY", "EE", "LV", "LT", "SI"]


def _frame(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """Seeded traffic: 4 big countries plus 8 rare ones with 4 entities each (share 0.13%)."""
    rng = np.random.default_rng(seed)
    countries = rng.choice(["US", "GB", "DE", "FR"], size=n, p=[0.5, 0.2, 0.2, 0.1]).astype(object)
    countries[: len(RARE) * 4] = np.repeat(RARE, 4)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "user_id": np.arange(n),
            "event_time": pd.Timestamp("2024-03-04") + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
            "country": countries,
            "plan": rng.choice(["free", "basic", "pro"], size=n),
            "sessions": rng.normal(10, 2, n),
            "tenure": rng.exponential(100, n),
            "churned": rng.binomial(1, 0.2, n),
        }
    )


# -- allocation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total", "weights", "capacity", "expected"),
    [
        (10, [5, 3, 2], [5, 3, 2], [5, 3, 2]),
        (7, [1, 1, 1], [10, 10, 10], [3, 2, 2]),  # largest remainder, ties to the lower index
        (10, [8, 1, 1], [2, 10, 10], [2, 4, 4]),  # a full stratum's surplus is re-spread
        (5, [0, 0, 1], [3, 3, 1], [2, 2, 1]),  # zero weights take the rest evenly
        (0, [1, 2], [1, 2], [0, 0]),
    ],
)
def test_allocate_hand_worked(total: int, weights: list, capacity: list, expected: list) -> None:
    assert allocate(total, np.array(weights), np.array(capacity)).tolist() == expected


def test_allocate_rejects_more_than_capacity() -> None:
    with pytest.raises(InputError, match="cannot allocate 4"):
        allocate(4, np.array([1, 1]), np.array([1, 2]))


# -- dedup -------------------------------------------------------------------------------------
def test_dedupe_keeps_latest_row_per_entity() -> None:
    f = pd.DataFrame(
        {
            "request_id": [1, 2, 3, 4],
            "user_id": ["a", "a", "b", "a"],
            "event_time": pd.to_datetime(["2024-03-05", "2024-03-07", "2024-03-06", "2024-03-06"]),
        }
    )
    assert dedupe_latest(f, CONTRACT)["request_id"].tolist() == [3, 2]


def test_sample_has_one_row_per_entity_the_most_recent() -> None:
    f = _frame()
    extra = f.iloc[:500].assign(
        request_id=np.arange(10_000, 10_500), event_time=f["event_time"].iloc[:500] - pd.Timedelta(days=1)
    )
    ts = refresh_test_set(pd.concat([f, extra]), CONTRACT, 800, np.random.default_rng(1))
    assert ts.frame["user_id"].is_unique
    assert not set(ts.frame["request_id"]) & set(extra["request_id"])  # older duplicates never chosen
    assert ts.manifest["duplicates_dropped"] == 500 and ts.manifest["entities"] == 3000


# -- stratification ----------------------------------------------------------------------------
def test_strata_mirror_production_exactly_without_tail() -> None:
    ts = refresh_test_set(_frame(), CONTRACT, 600, np.random.default_rng(2), tail_cap=0.0)
    assert len(ts.frame) == 600 and ts.manifest["tail"]["kept"] == 0
    for row in ts.manifest["strata"]:
        assert abs(row["sample"] - 600 * row["production_share"]) < 1  # largest remainder: off by < 1 row
    # Independent recount of the label x country strata in the returned frame.
    pool = _frame()
    prod = pool.groupby(["churned", "country"]).size() / len(pool)
    got = ts.frame.groupby(["churned", "country"]).size()
    for key, share in prod.items():
        assert abs(got.get(key, 0) - 600 * share) < 1


def test_strata_shares_stay_within_tail_cap_with_tail() -> None:
    ts = refresh_test_set(_frame(), CONTRACT, 600, np.random.default_rng(2), tail_cap=0.1)
    m = ts.manifest
    for row in m["strata"]:
        assert abs(row["sample_share"] - row["production_share"]) <= 0.1
    assert m["segment_share_gap"]["sample"] <= 0.1
    pos = m["positive_rate"]
    assert abs(pos["sample"] - pos["production"]) <= 0.1


# -- the long tail -------------------------------------------------------------------------------
def test_rare_categories_kept_while_a_uniform_sample_misses_some() -> None:
    f = _frame()
    size = 300
    ts = refresh_test_set(f, CONTRACT, size, np.random.default_rng(3))
    assert set(RARE) <= set(ts.frame["country"])
    uniform = f.sample(n=size, random_state=np.random.default_rng(3))
    assert not set(RARE) <= set(uniform["country"])  # expected coverage ~ 1-(1-0.1)^4 = 34% per category
    m = ts.manifest
    assert sorted(m["rare_segments"]) == sorted(RARE)
    assert m["rare_segment_coverage"]["sample"] == 1.0
    assert m["rare_segment_coverage"]["uniform"] < 1.0
    present = set(f.iloc[np.flatnonzero(np.isin(f["request_id"], ts.frame["request_id"]))]["country"])
    assert set(RARE) <= present


def test_tail_cap_respected_and_every_group_represented() -> None:
    ts = refresh_test_set(_frame(), CONTRACT, 300, np.random.default_rng(4), tail_cap=0.1)
    tail = ts.manifest["tail"]
    assert tail["cap"] == 30
    assert tail["candidates"] > 30 and tail["kept"] == 30 and len(ts.tail_request_ids) == 30
    # 8 rare countries + low/high of the one key numeric (sessions) = 10 groups, all covered.
    assert tail["groups"] == 10 and tail["groups_kept"] == 10
    assert tail["by_reason"]["rare_category"] >= 8 and tail["by_reason"]["extreme"] >= 2
    smaller = refresh_test_set(_frame(), CONTRACT, 300, np.random.default_rng(4), tail_cap=0.02)
    assert smaller.manifest["tail"]["kept"] == 6  # floor(0.02 * 300)


def test_extremes_use_key_numeric_features_only() -> None:
    groups = tail_groups(dedupe_latest(_frame(), CONTRACT), CONTRACT, 0.01, 0.01)
    extremes = {(g.feature, g.value) for g in groups if g.reason == "extreme"}
    assert extremes == {("sessions", "low"), ("sessions", "high")}
    pool = dedupe_latest(_frame(), CONTRACT)
    hi = np.quantile(pool["sessions"], 0.99)
    g = next(g for g in groups if g.value == "high")
    assert sorted(g.positions.tolist()) == np.flatnonzero(pool["sessions"].to_numpy() > hi).tolist()


def test_unseen_values_are_kept() -> None:
    f = _frame()
    f.loc[100, "plan"] = "platinum"  # not in the champion's vocabulary
    vocab = {"plan": {"free", "basic", "pro"}}
    ts = refresh_test_set(f, CONTRACT, 200, np.random.default_rng(5), known_vocab=vocab)
    assert "platinum" in set(ts.frame["plan"])
    assert ts.manifest["tail"]["by_reason"]["unseen"] == 1
    assert ts.manifest["tail"]["group_list"][0] == {
        "reason": "unseen",
        "feature": "plan",
        "value": "platinum",
        "rows": 1,
    }


# -- determinism and hashing ------------------------------------------------------------------
def test_same_seed_same_sample_and_hash_different_seed_differs() -> None:
    f = _frame()
    a = refresh_test_set(f, CONTRACT, 400, np.random.default_rng(7))
    b = refresh_test_set(f.sample(frac=1.0, random_state=1), CONTRACT, 400, np.random.default_rng(7))
    c = refresh_test_set(f, CONTRACT, 400, np.random.default_rng(8))
    assert a.content_hash == b.content_hash
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.content_hash != c.content_hash
    assert a.frame["request_id"].is_monotonic_increasing
    assert a.manifest["content_hash"] == a.content_hash


def test_content_hash_is_canonical_and_sensitive() -> None:
    f = _frame(n=50)
    h = content_hash(f, sort_by="request_id")
    shuffled = f.sample(frac=1.0, random_state=0)[list(reversed(f.columns))]
    assert content_hash(shuffled, sort_by="request_id") == h
    changed = f.copy()
    changed.loc[3, "tenure"] += 1e-9
    assert content_hash(changed, sort_by="request_id") != h
    renamed = f.assign(plan=f["plan"].where(f.index != 7, None))
    assert content_hash(renamed, sort_by="request_id") != h
    assert len(h) == 64


def test_whole_pool_when_size_exceeds_entities() -> None:
    f = _frame(n=120)
    ts = refresh_test_set(f, CONTRACT, 500, np.random.default_rng(0))
    assert len(ts.frame) == 120 and ts.manifest["whole_pool"] is True
    assert ts.manifest["segment_share_gap"] == {"sample": 0.0, "uniform": 0.0}


def test_manifest_is_strict_json() -> None:
    ts = refresh_test_set(_frame(), CONTRACT, 300, np.random.default_rng(0))
    json.dumps(ts.manifest, allow_nan=False)
    m = ts.manifest
    assert m["size"] == 300 and m["size_requested"] == 300 and m["rows_in"] == 3000
    shares = m["segment_shares"]
    for key in ("production", "sample", "uniform"):
        assert math.isclose(sum(shares[key].values()), 1.0)
    pool = _frame()
    assert shares["production"]["US"] == pytest.approx((pool["country"] == "US").mean())


def test_contract_without_segment_stratifies_by_label() -> None:
    c = CONTRACT.model_copy(update={"segment": None})
    ts = refresh_test_set(_frame(), c, 500, np.random.default_rng(0), tail_cap=0.0)
    assert {r["segment"] for r in ts.manifest["strata"]} == {"all"}
    assert ts.manifest["rare_segment_coverage"] == {"sample": None, "uniform": None}
    assert ts.manifest["segment_share_gap"] == {"sample": None, "uniform": None}  # nothing to compare
    assert ts.manifest["segment"] is None and ts.manifest["rare_segments"] == []
    json.dumps(ts.manifest, allow_nan=False)
    assert abs(ts.frame["churned"].sum() - 500 * _frame()["churned"].mean()) < 1


def test_numeric_category_codes_are_grouped_as_their_text() -> None:
    """Float codes (an int column with a gap) and int codes name the same tail groups."""
    c = parse_contract(
        {
            "entity_id": "user_id",
            "request_id": "request_id",
            "timestamp": "event_time",
            "target": {"name": "churned"},
            "segment": "mcc",
            "features": {"mcc": {"type": "categorical", "nullable": True}, "tenure": {"type": "numeric"}},
        }
    )
    n = 200
    codes = np.where(np.arange(n) < 198, 5411.0, 7995.0)
    codes[5] = np.nan
    f = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "user_id": np.arange(n),
            "event_time": pd.Timestamp("2024-03-04") + pd.to_timedelta(np.arange(n), unit="min"),
            "mcc": codes,
            "tenure": np.arange(n, dtype=float),
            "churned": np.arange(n) % 2,
        }
    )
    groups = tail_groups(f, c, rare_share=0.05, extreme_quantile=0.0, known_vocab={"mcc": {5411}})
    assert [(g.reason, g.value, g.positions.tolist()) for g in groups] == [
        ("unseen", "7995", [198, 199]),
        ("rare_category", "7995", [198, 199]),
    ]
    ts = refresh_test_set(f, c, 100, np.random.default_rng(0), rare_share=0.05, extreme_quantile=0.0)
    assert set(ts.manifest["segment_shares"]["production"]) == {"5411", "7995", "__missing__"}
    assert ts.manifest["rare_segments"] == ["7995", "__missing__"]


def test_input_errors() -> None:
    f = _frame(n=50)
    with pytest.raises(InputError, match="missing column"):
        refresh_test_set(f.drop(columns="churned"), CONTRACT, 10, np.random.default_rng(0))
    with pytest.raises(InputError, match="needs labelled rows; 1 row"):
        refresh_test_set(f.assign(churned=[None] + [0] * 49), CONTRACT, 10, np.random.default_rng(0))
    with pytest.raises(InputError, match="size must be >= 1"):
        refresh_test_set(f, CONTRACT, 0, np.random.default_rng(0))


def test_the_hash_ignores_how_rows_were_served():
    """Latency, score and model version say how a row was served: two runs of the same data agree."""
    base = pd.DataFrame({"request_id": ["a", "b"], "x": [1.0, 2.0]})
    served = base.assign(latency_ms=[1.5, 2.5], score=[0.1, 0.9], model_version=["1", "2"], variant="champion")
    again = served.assign(latency_ms=[3.0, 0.7])
    assert content_hash(served, "request_id") == content_hash(again, "request_id") == content_hash(base, "request_id")
    assert content_hash(base.assign(x=[1.0, 2.5]), "request_id") != content_hash(base, "request_id")
