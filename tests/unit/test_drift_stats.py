"""Drift statistics: hand-worked tiny cases and agreement with scipy on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, entropy, ks_2samp

from driftline.drift import stats


def test_hand_worked_two_buckets() -> None:
    # reference 50/50, current 25/75: no smoothing involved.
    ref, cur = np.array([50, 50]), np.array([25, 75])
    psi = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    m = (0.375, 0.625)
    div = 0.5 * (0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1]))
    div += 0.5 * (0.25 * math.log2(0.25 / m[0]) + 0.75 * math.log2(0.75 / m[1]))
    assert stats.distance("psi", ref, cur) == pytest.approx(psi, abs=1e-15)
    assert stats.distance("psi", ref, cur) == pytest.approx(0.27465307216702745, abs=1e-15)
    assert stats.distance("kl", ref, cur) == pytest.approx(kl, abs=1e-15)
    assert stats.distance("js", ref, cur) == pytest.approx(math.sqrt(div), abs=1e-15)


def test_empty_bucket_is_smoothed_and_renormalised() -> None:
    # Reference never saw bucket 2; current puts half its rows there.
    ref, cur = np.array([10, 0]), np.array([5, 5])
    z = 1 + 1e-4
    r = (1 / z, 1e-4 / z)
    c = (0.5, 0.5)
    psi = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    kl = sum(ci * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    assert stats.distance("psi", ref, cur, 1e-4) == pytest.approx(psi, rel=1e-13)
    assert stats.distance("kl", ref, cur, 1e-4) == pytest.approx(kl, rel=1e-13)
    assert stats.distance("js", ref, cur, 1e-4) == pytest.approx(jensenshannon(r, c, base=2), rel=1e-13)


def test_buckets_empty_on_both_sides_are_dropped() -> None:
    a = stats.distance("psi", np.array([50, 50, 0, 0]), np.array([25, 75, 0, 0]))
    b = stats.distance("psi", np.array([50, 50]), np.array([25, 75]))
    assert a == b


def test_identical_and_disjoint_extremes() -> None:
    same = np.array([3, 1, 4, 1, 5])
    for name in ("psi", "kl", "js"):
        assert stats.distance(name, same, same * 7) == pytest.approx(0.0, abs=1e-15)
    # Disjoint supports: JS distance approaches its maximum 1 (up to smoothing).
    assert stats.distance("js", np.array([10, 0]), np.array([0, 10])) == pytest.approx(1.0, abs=2e-3)


def test_registry_declares_default_bands() -> None:
    assert stats.STATISTICS["psi"].warn == 0.1
    assert stats.STATISTICS["psi"].alert == 0.25
    assert set(stats.STATISTICS) >= {"psi", "kl", "js"}
    with pytest.raises(KeyError, match="unknown statistic"):
        stats.distance("nope", np.array([1]), np.array([1]))


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scipy_on_random_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 40))
    ref = rng.integers(0, 500, k)
    cur = rng.integers(0, 500, k)
    ref[0] = 0  # an empty bucket on one side at least
    cur[1] = 0
    eps = 1e-4
    r, c, used = stats.smoothed_proportions(ref, cur, eps)
    r, c = r[used], c[used]
    assert stats.distance("kl", ref, cur, eps) == pytest.approx(entropy(c, r), abs=1e-9)
    assert stats.distance("psi", ref, cur, eps) == pytest.approx(entropy(c, r) + entropy(r, c), abs=1e-9)
    assert stats.distance("js", ref, cur, eps) == pytest.approx(jensenshannon(r, c, base=2), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_ks_binned_equals_ks_2samp_when_values_sit_on_bins(seed: int) -> None:
    # Integer data with one value per bin: the binned KS statistic is the exact one.
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 8, int(rng.integers(300, 3000)))
    b = np.minimum(rng.poisson(3.5, int(rng.integers(300, 3000))), 7)
    ref = np.bincount(a, minlength=8)
    cur = np.bincount(b, minlength=8)
    d, p = stats.ks_binned(ref, cur)
    res = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(res.statistic, abs=1e-12)
    assert p == pytest.approx(res.pvalue, abs=1e-9)


def test_ks_exact_is_scipy_on_raw_values() -> None:
    rng = np.random.default_rng(7)
    a = np.r_[rng.normal(size=400), np.nan]
    b = rng.normal(0.3, 1, size=300)
    d, p = stats.ks_exact(a, b)
    res = ks_2samp(a[:-1], b)
    assert (d, p) == (pytest.approx(res.statistic, abs=1e-12), pytest.approx(res.pvalue, abs=1e-12))


@pytest.mark.parametrize("seed", range(4))
def test_chi2_equals_chi2_contingency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 30))
    ref = rng.integers(1, 400, k)
    cur = rng.integers(1, 400, k)
    ref[-1] = cur[-1] = 0  # a bucket empty on both sides is dropped, as scipy would need
    stat, p = stats.chi2_counts(ref, cur)
    res = chi2_contingency(np.vstack([ref[:-1], cur[:-1]]), correction=False)
    assert stat == pytest.approx(res.statistic, rel=1e-12)
    assert p == pytest.approx(res.pvalue, abs=1e-9)
