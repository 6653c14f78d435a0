"""Sample-size-aware bands: small windows get a wider band that unchanged data rarely exceeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from driftline.drift import stats
from driftline.drift.bands import Band, effective_band, severity

REF = np.full(10, 10_000)  # 10 equal bins, 100k reference rows


def band(n: int, ref: np.ndarray = REF, seed: int = 0) -> Band:
    return effective_band(ref, n, 0.1, 0.25, smoothing=1e-4, quantile=0.95, alert_quantile=0.999, draws=4000, seed=seed)


def test_small_window_band_is_raised_near_the_chi2_approximation() -> None:
    b = band(100)
    assert b.method == "monte_carlo"
    approx = chi2.ppf(0.95, 9) * (1 / 100 + 1 / REF.sum())  # ~0.17
    assert b.warn > 0.1
    assert b.warn == pytest.approx(approx, rel=0.15)
    assert b.alert >= 0.25 and b.alert >= b.warn


def test_large_window_uses_configured_band() -> None:
    b = band(50_000)
    assert (b.method, b.warn, b.alert) == ("configured", 0.1, 0.25)


def test_band_is_reproducible() -> None:
    assert band(150) == band(150)


def test_unchanged_data_exceeds_the_band_about_five_percent_of_the_time() -> None:
    # Independent draws (another seed) of unchanged windows of 100 rows.
    b = band(100)
    rng = np.random.default_rng(12345)
    p = REF / REF.sum()
    cur = rng.multinomial(100, p, size=4000)
    ref = rng.multinomial(int(REF.sum()), p, size=4000)
    values = stats.psi(ref, cur, 1e-4)
    assert np.mean(values >= b.warn) == pytest.approx(0.05, abs=0.015)
    assert np.mean(values > b.alert) <= 0.004


def test_rare_buckets_raise_the_band_beyond_chi2() -> None:
    # A category with 0.5% share often comes out empty in 100 rows and gets the 1e-4 smoothing.
    ref = np.array([40_000, 30_000, 29_000, 500, 500])
    b = band(100, ref)
    assert b.warn > chi2.ppf(0.95, 4) * (1 / 100 + 1 / ref.sum())


def test_severity_boundaries() -> None:
    b = Band(0.1, 0.25, 0.1, 0.25, "configured")
    assert severity(0.0999, b, 1000, 1000, 100) == "stable"
    assert severity(0.1, b, 1000, 1000, 100) == "warn"
    assert severity(0.25, b, 1000, 1000, 100) == "warn"
    assert severity(0.2501, b, 1000, 1000, 100) == "alert"
    assert severity(5.0, b, 99, 1000, 100) == "insufficient_data"
    assert severity(5.0, b, 1000, 99, 100) == "insufficient_data"
