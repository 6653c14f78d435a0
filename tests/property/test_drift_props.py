"""Properties of the drift statistics, the mergeable counts and the profile format."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from driftline.contract import parse_contract
from driftline.drift import Profile, fit_profile
from driftline.drift import stats as ds
from driftline.drift.counts import count_window
from driftline.settings import DriftSettings
from tests.conftest import TINY_CONTRACT

counts = (
    st.integers(2, 30)
    .flatmap(
        lambda k: st.tuples(
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
        )
    )
    .filter(lambda rc: rc[0].sum() > 0 and rc[1].sum() > 0)
)


@given(counts)
def test_psi_nonnegative_symmetric(rc: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = rc
    a = ds.distance("psi", ref, cur)
    assert a >= 0
    assert abs(a - ds.distance("psi", cur, ref)) <= 1e-9 * max(1.0, a)


@given(counts)
def test_kl_nonnegative_js_in_unit_interval(rc: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = rc
    assert ds.distance("kl", ref, cur) >= 0
    assert 0 <= ds.distance("js", ref, cur) <= 1


@given(arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 10_000)), st.integers(1, 50))
def test_identical_distributions_are_zero(c: np.ndarray, scale: int) -> None:
    if c.sum() == 0:
        return
    for name in ("psi", "kl", "js"):
        assert ds.distance(name, c, c * scale) <= 1e-12


CONTRACT = parse_contract(TINY_CONTRACT)
COUNTRIES = ["US", "GB", "DE", "FR", None]


@st.composite
def frames(draw: st.DrawFn, min_rows: int = 1) -> pd.DataFrame:
    n = draw(st.integers(min_rows, 60))
    num = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan")), st.sampled_from([0.0, 1.0, 2.0]))
    return pd.DataFrame(
        {
            "country": draw(st.lists(st.sampled_from(COUNTRIES), min_size=n, max_size=n)),
            "plan": draw(st.lists(st.sampled_from(["free", "pro", "gold", None]), min_size=n, max_size=n)),
            "tenure_days": draw(st.lists(num, min_size=n, max_size=n)),
            "score_hint": draw(st.lists(num, min_size=n, max_size=n)),
            "auto_renew": draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n)),
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), frames(), st.lists(st.integers(1, 59), max_size=4))
def test_chunk_counts_add_up_to_the_whole(ref: pd.DataFrame, cur: pd.DataFrame, cuts: list[int]) -> None:
    p = fit_profile(ref, CONTRACT, DriftSettings(segment_min_rows=1, bins=4))
    names = list(p.features)
    bounds = sorted({0, len(cur), *[c for c in cuts if c < len(cur)]})
    parts = [count_window(p, cur.iloc[a:b], names) for a, b in pairwise(bounds)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    whole = count_window(p, cur, names)
    assert merged.n_rows == whole.n_rows == len(cur)
    for name in names:
        a, b = merged.features[name], whole.features[name]
        assert np.array_equal(a.counts, b.counts)
        assert (a.below, a.above, a.unseen) == (b.below, b.above, b.unseen)
        assert int(b.counts.sum()) == len(cur)
    assert set(merged.segments) == set(whole.segments)
    for k, seg in whole.segments.items():
        assert merged.segments[k].n_rows == seg.n_rows
        for name in names:
            assert np.array_equal(merged.segments[k].features[name], seg.features[name])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.integers(2, 12))
def test_profile_json_round_trip_is_lossless(ref: pd.DataFrame, bins: int) -> None:
    p = fit_profile(ref, CONTRACT, DriftSettings(segment_min_rows=1, bins=bins))
    text = p.to_json()
    back = Profile.from_json(text)
    assert back == p and back.to_json() == text
    for name, fp in p.features.items():
        assert np.array_equal(back.features[name].counts, fp.counts)
        if fp.edges is not None:
            assert back.features[name].edges.tobytes() == fp.edges.tobytes()


values = arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False),
        st.sampled_from([0.0, 1.0, 2.0, float("nan"), float("inf"), float("-inf")]),
    ),
)


@settings(max_examples=80, deadline=None)
@given(values, values, st.sampled_from([2, 5, 10, 40, 60]))
def test_numeric_encoders_agree_with_searchsorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> None:
    """Counting by comparisons, codes by summed comparisons and searchsorted give the same bins."""
    from driftline.drift.counts import count_numeric, encode_numeric
    from driftline.drift.profile import _numeric_profile

    fp = _numeric_profile("x", ref, bins)
    series = pd.Series(cur)
    expected = np.bincount(np.searchsorted(fp.search_edges, cur, side="left"), minlength=fp.n_buckets)
    codes, below, above = encode_numeric(fp, series)
    counted = count_numeric(fp, series)
    assert np.array_equal(np.bincount(codes, minlength=fp.n_buckets), expected)
    assert np.array_equal(counted.counts, expected)
    assert (counted.below, counted.above) == (below, above)
    assert expected[-1] == np.isnan(cur).sum()
