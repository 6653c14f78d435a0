"""Properties of the skew checks (hypothesis, small inputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.validation.skew import KNOWN_FACTORS, _norm, scale_skew, vocabulary_skew

words = st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=12)


@given(st.lists(words, min_size=1, max_size=30), st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_serving_drawn_from_training_values_has_no_vocabulary_finding(values, rnd):
    serving = [rnd.choice(values) for _ in range(20)]
    assert vocabulary_skew(pd.Series(values, dtype=object), pd.Series(serving, dtype=object), "x") is None


@given(words)
def test_normalisation_is_idempotent_and_ignores_case_and_spacing(text):
    n = _norm(text)
    assert _norm(n) == n
    assert _norm(f"  {text} .") == n
    assert _norm(text.casefold()) == n


@given(st.sampled_from(sorted(KNOWN_FACTORS)), st.booleans(), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_known_unit_factors_are_found_on_positive_continuous_data(factor, invert, seed):
    rng = np.random.default_rng(seed)
    k = 1.0 / factor if invert else factor
    training = pd.Series(rng.lognormal(2.0, 0.6, 3000))
    serving = pd.Series(rng.lognormal(2.0, 0.6, 3000) * k)
    found = scale_skew(training, serving, "x")
    assert found is not None and found.factor == k
