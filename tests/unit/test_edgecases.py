"""The edge-case suite and its gates: predicates, the multiple-testing rules, mining and judging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftline import edgecases
from driftline.contract import parse_contract
from driftline.settings import load_settings

CONTRACT = parse_contract(
    {
        "name": "edge",
        "entity_id": "user_id",
        "timestamp": "event_time",
        "target": {"name": "y", "positive": 1},
        "segment": "region",
        "features": {
            "region": {"type": "categorical", "vocabulary": ["a", "b", "c", "d"], "key": True},
            "plan": {"type": "categorical", "vocabulary": ["free", "pro"]},
            "x": {"type": "numeric", "key": True, "nullable": True},
        },
    }
)


def frame(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows, labels from a known probability, and that probability (a perfect scorer)."""
    f = pd.DataFrame(
        {
            "region": rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.choice(["free", "pro"], size=n),
            "x": rng.normal(size=n),
        }
    )
    p = 1 / (1 + np.exp(-(2 * f["x"].to_numpy() - 0.3)))
    return f, (rng.random(n) < p).astype(int), p


def test_predicates_select_exactly():
    f = pd.DataFrame({"region": ["a", "b", None, "z"], "x": [0.0, 1.0, 2.0, None]})
    m = edgecases.mask
    assert m(f, ({"feature": "region", "op": "in", "values": ["a", "z"]},)).tolist() == [True, False, False, True]
    assert m(f, ({"feature": "region", "op": "not_in", "values": ["a", "b"]},)).tolist() == [False, False, False, True]
    assert m(f, ({"feature": "x", "op": "missing"},)).tolist() == [False, False, False, True]
    assert m(f, ({"feature": "x", "op": "between", "low": 0.0, "high": 1.0},)).tolist() == [True, False, False, False]
    closed = {"feature": "x", "op": "between", "low": 0.0, "high": 1.0, "closed": True}
    assert m(f, (closed,)).tolist() == [True, True, False, False]
    assert m(f, ({"feature": "x", "op": "above", "value": 1.0},)).tolist() == [False, False, True, False]
    both = ({"feature": "region", "op": "in", "values": ["b"]}, {"feature": "x", "op": "below", "value": 5})
    assert m(f, both).tolist() == [False, True, False, False]
    assert not m(f, ({"feature": "nope", "op": "missing"},)).any()


def test_benjamini_hochberg_matches_scipy_and_holm_a_hand_case():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 0.01, 5), rng.uniform(0, 1, 30)])
    assert edgecases.benjamini_hochberg(p, 0.05).tolist() == (stats.false_discovery_control(p) <= 0.05).tolist()
    # Holm at 0.05 over 4: 0.01 <= 0.05/4, 0.015 <= 0.05/3, then 0.03 > 0.05/2 stops.
    assert edgecases.holm([0.03, 0.01, 0.04, 0.015], 0.05).tolist() == [False, True, False, True]
    assert edgecases.holm([0.03, 0.01, 0.04, 0.02], 0.05).tolist() == [False, True, False, False]


def test_the_welch_p_value_is_scipys():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.3, 1, 40), rng.normal(0, 2, 300)
    want = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    got = edgecases._welch_greater(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    assert got == pytest.approx(want, rel=1e-9)


def test_mining_names_the_slice_the_champion_gets_wrong_and_nothing_on_noise():
    rng = np.random.default_rng(11)
    f, y, p = frame(rng, 6000)
    s = load_settings(None)
    clean = edgecases.build_suite(f, y, p, CONTRACT, s)
    # With the true probability, region (which does not enter it) never looks worse; x bins near
    # the boundary do, as outcomes there are coin flips: that is where any model errs.
    assert not [sl for sl in clean.slices if sl.kind == "worst" and "region" in sl.id]
    bad = p.copy()
    d = (f["region"] == "d").to_numpy()
    bad[d] = 1 - bad[d]  # the champion is wrong on region d
    suite = edgecases.build_suite(f, y, bad, CONTRACT, s, vocab={"region": {"a", "b", "c"}})
    worst = [sl for sl in suite.slices if sl.kind == "worst"]
    assert worst[0].id == "worst:region=d" and worst[0].mined["rows"] == int(d.sum())
    assert worst[0].mined["brier"] == pytest.approx(float(np.mean((bad[d] - y[d]) ** 2)), abs=1e-6)
    assert {sl.id for sl in suite.slices} >= {"unseen:region", f"extreme:x<{np.quantile(f['x'], 0.01):.4g}"}
    assert suite.digest == edgecases.Suite.from_dict(suite.to_dict()).digest


def test_a_candidate_better_overall_but_much_worse_on_one_slice_fails_naming_it():
    rng = np.random.default_rng(21)
    f, y, _ = frame(rng, 8000)
    s = load_settings(None)
    suite = edgecases.Suite(
        (
            edgecases.Slice("worst:region=d", "worst", ({"feature": "region", "op": "in", "values": ["d"]},)),
            edgecases.Slice("worst:region=a", "worst", ({"feature": "region", "op": "in", "values": ["a"]},)),
        ),
        {},
    )

    def champion(g):  # a blurred version of the truth
        return 1 / (1 + np.exp(-(0.3 * g["x"].to_numpy() - 0.1)))

    def candidate(g):  # the truth, except upside down on region d
        q = 1 / (1 + np.exp(-(2 * g["x"].to_numpy() - 0.3)))
        d = (g["region"] == "d").to_numpy()
        return np.where(d, 1 - q, q)

    overall = np.mean((candidate(f) - y) ** 2) - np.mean((champion(f) - y) ** 2)
    assert overall < 0  # better overall
    check = edgecases.check(suite, f, y, candidate, champion, CONTRACT, s, np.random.default_rng(0))
    by_id = {r.id: r for r in check.results}
    d = (f["region"] == "d").to_numpy()
    assert by_id["worst:region=d"].rows == int(d.sum()) and by_id["worst:region=d"].failed
    want = np.mean((candidate(f)[d] - y[d]) ** 2) - np.mean((champion(f)[d] - y[d]) ** 2)
    assert by_id["worst:region=d"].difference == pytest.approx(want, abs=1e-6)
    assert not by_id["worst:region=a"].failed
    slices_gate, flip_gate = edgecases.gates(check, s)
    assert (
        not slices_gate.passed and "worst:region=d" in slices_gate.detail and f"n={int(d.sum())}" in slices_gate.detail
    )
    assert flip_gate.passed


def test_a_candidate_whose_answers_flip_under_a_one_percent_nudge_fails():
    rng = np.random.default_rng(31)
    f, y, _ = frame(rng, 3000)
    s = load_settings(None)
    suite = edgecases.Suite((), {})

    def champion(g):
        return 1 / (1 + np.exp(-2 * g["x"].to_numpy()))

    def jumpy(g):  # the class depends on the 3rd decimal of x: any nudge flips about half
        return (np.floor(np.abs(g["x"].to_numpy()) * 1000) % 2).astype(float) * 0.8 + 0.1

    check = edgecases.check(suite, f, y, jumpy, champion, CONTRACT, s, np.random.default_rng(0))
    _, flip_gate = edgecases.gates(check, s)
    assert check.flips["rows"] == 2000 and check.flips["champion"]["nudge"] < 0.05
    assert check.flips["candidate"]["nudge"] > 0.3
    assert not flip_gate.passed and flip_gate.code == "unstable"
    # Swaps draw another value of the vocabulary for every row.
    variants = edgecases.perturbations(f.head(500), CONTRACT, 0.01, np.random.default_rng(1))
    assert (variants["swap:region"]["region"].to_numpy() != f.head(500)["region"].to_numpy()).all()
    assert np.allclose(np.abs(variants["nudge"]["x"] / f.head(500)["x"] - 1), 0.01)
