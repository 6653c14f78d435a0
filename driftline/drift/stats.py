"""Distances and tests between two binned distributions: one small function per statistic.

Every distance takes the reference and current *counts* on the same buckets (the last axis;
leading axes are batches, which the sample-size bands use for Monte Carlo draws) and the
smoothing constant. Counts become proportions the same way for all of them
(:func:`smoothed_proportions`):

1. buckets empty on both sides are dropped (they carry no information);
2. on each side, a bucket that is empty gets proportion ``smoothing`` (1e-4 by default,
   Evidently's choice) instead of 0, so logarithms stay finite;
3. each side is renormalised to sum to 1, so the results are true divergences between
   probability distributions (KL >= 0, JS distance in [0, 1]) and agree with scipy.

Statistics are registered by name with their default thresholds declared next to them, so
adding one touches this file only: ``STATISTICS["psi"].warn``. Severity in driftline is
decided on PSI; KL and JS are reported alongside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DistanceFn = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class Statistic:
    """A registered distance: its function, default bands and a one-line description."""

    name: str
    fn: DistanceFn
    warn: float | None
    alert: float | None
    description: str


STATISTICS: dict[str, Statistic] = {}


def register(
    name: str, *, warn: float | None = None, alert: float | None = None, description: str = ""
) -> Callable[[DistanceFn], DistanceFn]:
    """Register a distance under ``name`` with its default warn/alert bands."""

    def deco(fn: DistanceFn) -> DistanceFn:
        STATISTICS[name] = Statistic(name, fn, warn, alert, description or (fn.__doc__ or "").split("\n")[0])
        return fn

    return deco


def smoothed_proportions(
    ref_counts: np.ndarray, cur_counts: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn counts into smoothed, renormalised proportions (see the module docstring).

    Returns ``(p_ref, p_cur, used)``: ``used`` marks buckets that are non-empty on at
    least one side; unused buckets are 0 on both sides and contribute nothing.
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    used = (ref > 0) | (cur > 0)
    out = []
    for c in (ref, cur):
        total = c.sum(axis=-1, keepdims=True)
        p = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
        p = np.where(used & (p == 0), smoothing, p)
        s = p.sum(axis=-1, keepdims=True)
        out.append(np.divide(p, s, out=np.zeros_like(p), where=s > 0))
    return out[0], out[1], used


def _log_ratio(a: np.ndarray, b: np.ndarray, used: np.ndarray) -> np.ndarray:
    return np.log(np.where(used, a, 1.0) / np.where(used, b, 1.0))


@register("psi", warn=0.1, alert=0.25, description="Population stability index, natural log.")
def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, smoothing: float = 1e-4) -> np.ndarray:
    """Population stability index: sum((cur - ref) * ln(cur / ref)). Symmetric, >= 0."""
    r, c, used = smoothed_proportions(ref_counts, cur_counts, smoothing)
    return np.maximum(((c - r) * _log_ratio(c, r, used)).sum(axis=-1), 0.0)


@register("kl", description="Kullback-Leibler divergence KL(current || reference), natural log.")
def kl(ref_counts: np.ndarray, cur_counts: np.ndarray, smoothing: float = 1e-4) -> np.ndarray:
    """KL(current || reference) = sum(cur * ln(cur / ref)), natural log, >= 0."""
    r, c, used = smoothed_proportions(ref_counts, cur_counts, smoothing)
    return np.maximum((c * _log_ratio(c, r, used)).sum(axis=-1), 0.0)


@register("js", description="Jensen-Shannon distance, base 2, in [0, 1].")
def js(ref_counts: np.ndarray, cur_counts: np.ndarray, smoothing: float = 1e-4) -> np.ndarray:
    """Jensen-Shannon distance (square root of the divergence), base 2, in [0, 1].

    Same definition as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    """
    r, c, used = smoothed_proportions(ref_counts, cur_counts, smoothing)
    m = (r + c) / 2.0
    div = (r * _log_ratio(r, m, used)).sum(axis=-1) + (c * _log_ratio(c, m, used)).sum(axis=-1)
    return np.clip(np.sqrt(np.maximum(div / 2.0 / math.log(2.0), 0.0)), 0.0, 1.0)


def distance(name: str, ref_counts: np.ndarray, cur_counts: np.ndarray, smoothing: float = 1e-4) -> float:
    """Compute one registered distance by name as a Python float."""
    try:
        stat = STATISTICS[name]
    except KeyError:
        raise KeyError(f"unknown statistic {name!r}; known: {', '.join(sorted(STATISTICS))}") from None
    return float(stat.fn(ref_counts, cur_counts, smoothing))


# -- secondary tests (p-values) ------------------------------------------------------------


def ks_binned(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test on ordered bin counts: (D, p-value).

    D is the largest gap between the two empirical CDFs at the bin edges, which is the
    exact KS statistic when every value lies on a bin's representative point and a lower
    bound otherwise (so the test is conservative on binned data). The p-value is Smirnov's
    asymptotic two-sided distribution with ``en = n*m/(n+m)``, as ``scipy.stats.ks_2samp``
    computes it with ``method="asymp"``. Pass only the ordered value bins (no missing bucket).
    """
    from scipy.stats import kstwo

    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    n1, n2 = ref.sum(), cur.sum()
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan")
    d = float(np.max(np.abs(np.cumsum(ref) / n1 - np.cumsum(cur) / n2)))
    d = min(max(d, 0.0), 1.0)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    p = float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return d, p


def ks_exact(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS test on raw values (NaN dropped) via ``scipy.stats.ks_2samp``."""
    from scipy.stats import ks_2samp

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def chi2_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-squared test of homogeneity on the 2 x k table of counts: (stat, p-value).

    Buckets empty on both sides are dropped; no continuity correction. Equal to
    ``scipy.stats.chi2_contingency(table, correction=False)`` on the same table.
    """
    from scipy.stats import chi2

    table = np.vstack([np.asarray(ref_counts, np.float64), np.asarray(cur_counts, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return stat, float(chi2.sf(stat, dof))
