"""Properties of the metric CUSUM: never negative, Page's closed form, resets, monotone in the evidence."""

from __future__ import annotations

from itertools import accumulate

from hypothesis import given
from hypothesis import strategies as st

from driftline.drift.policy import cusum_step

deficits = st.lists(st.floats(-20, 20, allow_nan=False), max_size=40)
slack = st.floats(0, 5, allow_nan=False)


def run(ds: list[float], k: float, start: float = 0.0) -> list[float]:
    return list(accumulate(ds, lambda s, d: cusum_step(s, d, k), initial=start))[1:]


@given(deficits, slack)
def test_never_negative_and_page_closed_form(ds: list[float], k: float) -> None:
    values = run(ds, k)
    assert all(v >= 0 for v in values)
    # Page: S_n = max(0, max over j of sum_{i=j..n} (d_i - k))
    for n, v in enumerate(values):
        best = max([0.0] + [sum(d - k for d in ds[j : n + 1]) for j in range(n + 1)])
        assert abs(v - best) <= 1e-9 * max(1.0, abs(best))


@given(deficits, slack)
def test_no_evidence_above_the_slack_keeps_it_at_zero(ds: list[float], k: float) -> None:
    assert all(v == 0 for v in run([min(d, k) for d in ds], k))


@given(deficits, deficits, slack)
def test_a_reset_forgets_the_weeks_before_it(before: list[float], after: list[float], k: float) -> None:
    # Restarting from 0 (a new champion, a retrain week) never gives more than carrying on, and
    # once the carried path touches 0 the two are the same: nothing before a 0 is remembered.
    carried = run(before + after, k)[len(before) :]
    restarted = run(after, k)
    assert all(r <= c + 1e-9 for r, c in zip(restarted, carried, strict=True))
    if 0.0 in carried:
        z = carried.index(0.0)
        assert all(abs(r - c) <= 1e-9 for r, c in zip(restarted[z:], carried[z:], strict=True))


@given(deficits, slack, st.integers(0, 39), st.floats(0, 10, allow_nan=False))
def test_more_shortfall_never_lowers_it(ds: list[float], k: float, i: int, extra: float) -> None:
    if not ds:
        return
    i %= len(ds)
    worse = [d + (extra if j == i else 0.0) for j, d in enumerate(ds)]
    assert all(b >= a - 1e-9 for a, b in zip(run(ds, k), run(worse, k), strict=True))
