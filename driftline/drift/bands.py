"""Sample-size-aware PSI bands: how large PSI gets on unchanged data of this size.

PSI on 100 unchanged rows is mostly sampling noise: with 10 bins, its 95th percentile is
about 0.17, above the usual warn level of 0.1. driftline therefore compares each feature's
PSI with an *effective* band:

    effective_warn  = max(configured warn,  Q(small_sample_quantile))        (default q = 0.95)
    effective_alert = max(configured alert, Q(small_sample_alert_quantile))  (default q = 0.999)

where Q(q) is the q-quantile of PSI between two samples of the *same* distribution, one with
the reference's row count N and one with the current window's row count n, on the profile's
buckets, with the same smoothing. So unchanged data reaches ``warn`` in at most ~5% and
``alert`` in at most ~0.1% of windows per feature (about 1% of windows for a 10-feature
contract), whatever the window size.

How Q is obtained (method ``monte_carlo``): the reference proportions p stand in for the
unchanged distribution; ``draws`` pairs (reference ~ Multinomial(N, p), current ~
Multinomial(n, p)) are drawn from a ``numpy.random.Generator`` seeded with ``band_seed`` and
PSI is computed for each pair exactly as for real data; Q is the empirical quantile. This
captures the small-sample effects the chi-squared approximation misses (rare buckets that come
out empty and get the 1e-4 smoothing).

Shortcut (method ``configured``): for large windows, PSI * (1/n + 1/N)^-1 is asymptotically
chi-squared with k - 1 degrees of freedom (k = non-empty reference buckets). When every bucket
expects at least 5 current rows and twice the chi-squared alert quantile is still below the
configured warn level, the noise cannot matter and the configured bands are used as they are
(no simulation). Below ``min_rows`` rows no severity is given at all (``insufficient_data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftline.drift.stats import psi


@dataclass(frozen=True)
class Band:
    """The warn/alert levels in force for one comparison, and how they were found."""

    warn: float
    alert: float
    configured_warn: float
    configured_alert: float
    method: str  # "configured" | "monte_carlo"
    null_warn: float | None = None
    null_alert: float | None = None


def null_psi_quantiles(
    ref_counts: np.ndarray,
    n_current: int,
    quantiles: tuple[float, ...],
    *,
    smoothing: float,
    draws: int,
    seed: int,
) -> np.ndarray:
    """Quantiles of PSI between two samples (sizes N and n) of the reference proportions."""
    ref = np.asarray(ref_counts, dtype=np.int64)
    n_ref = int(ref.sum())
    keep = ref > 0
    if keep.sum() <= 1 or n_current <= 0 or n_ref <= 0:
        return np.zeros(len(quantiles))
    p = ref[keep] / n_ref
    rng = np.random.default_rng(seed)
    cur = rng.multinomial(n_current, p, size=draws)
    ref_draw = rng.multinomial(n_ref, p, size=draws)
    values = psi(ref_draw, cur, smoothing)
    return np.quantile(values, quantiles, method="higher")


def _chi2_negligible(ref: np.ndarray, n: int, warn: float, q_alert: float) -> bool:
    from scipy.stats import chi2

    keep = ref > 0
    k = int(keep.sum())
    n_ref = int(ref.sum())
    if k <= 1:
        return True
    expected = n * ref[keep] / n_ref
    if expected.min() < 5:
        return False
    bound = float(chi2.ppf(q_alert, k - 1)) * (1.0 / n + 1.0 / n_ref)
    return 2.0 * bound < warn


def effective_band(
    ref_counts: np.ndarray,
    n_current: int,
    warn: float,
    alert: float,
    *,
    smoothing: float,
    quantile: float,
    alert_quantile: float,
    draws: int,
    seed: int,
) -> Band:
    """The band PSI is judged against for a window of ``n_current`` rows (module docstring)."""
    alert = max(alert, warn)
    ref = np.asarray(ref_counts, dtype=np.int64)
    if _chi2_negligible(ref, n_current, warn, alert_quantile):
        return Band(warn, alert, warn, alert, "configured")
    qw, qa = null_psi_quantiles(ref, n_current, (quantile, alert_quantile), smoothing=smoothing, draws=draws, seed=seed)
    eff_warn = max(warn, float(qw))
    eff_alert = max(alert, float(qa), eff_warn)
    return Band(eff_warn, eff_alert, warn, alert, "monte_carlo", float(qw), float(qa))


def severity(value: float, band: Band, n_current: int, n_reference: int, min_rows: int) -> str:
    """``stable`` below warn, ``alert`` above alert, else ``warn``; too few rows: ``insufficient_data``."""
    if min(n_current, n_reference) < min_rows:
        return "insufficient_data"
    if value < band.warn:
        return "stable"
    if value > band.alert:
        return "alert"
    return "warn"
