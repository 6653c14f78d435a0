"""Contract aliases: one reviewed rename read the same way by training, scoring, ingest and drift."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import ConfigError
from tests.conftest import TINY_CONTRACT


def _contract(aliases: dict | None = None, **country):
    data = copy.deepcopy(TINY_CONTRACT)
    data["features"]["country"] = {"type": "categorical", "vocabulary": ["US", "GB", "DE"], **country}
    if aliases is not None:
        data["features"]["country"]["aliases"] = aliases
    return parse_contract(data)


def test_apply_aliases_maps_only_the_aliased_values():
    c = _contract({"United States": "US", "U.K.": "GB"})
    frame = pd.DataFrame({"country": ["United States", "US", "U.K.", None, "FR"], "plan": ["free"] * 5})
    out = c.apply_aliases(frame)
    assert out["country"].tolist()[:3] == ["US", "US", "GB"] and pd.isna(out["country"][3])
    assert out["country"][4] == "FR" and frame["country"][0] == "United States"  # the input is untouched
    assert _contract().apply_aliases(frame) is frame  # nothing to do: the same frame


@pytest.mark.parametrize(
    ("aliases", "extra", "message"),
    [
        ({"United States": "USA"}, {}, "outside the vocabulary"),
        ({"A": "B", "B": "US"}, {"vocabulary": ["US", "B"]}, "not to another alias"),
    ],
)
def test_bad_aliases_are_refused_in_one_line(aliases, extra, message):
    with pytest.raises(ConfigError, match=message):
        _contract(aliases, **extra)
    data = copy.deepcopy(TINY_CONTRACT)
    data["features"]["tenure_days"]["aliases"] = {"1": "2"}
    with pytest.raises(ConfigError, match="only for categorical"):
        parse_contract(data)


def test_with_aliases_adds_to_what_is_there():
    c = _contract({"U.K.": "GB"}).with_aliases({"country": {"United States": "US"}})
    assert c.features["country"].aliases == {"U.K.": "GB", "United States": "US"}
    assert c.fingerprint() != _contract({"U.K.": "GB"}).fingerprint()
    assert c.schema_fingerprint() == _contract().schema_fingerprint()  # stored profiles stay usable


def test_a_closed_vocabulary_accepts_an_alias_at_ingest_and_stores_it_as_received():
    from driftline.ingest import check_predictions

    c = _contract({"United States": "US"}, closed=True)
    frame = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "user_id": ["u1", "u2", "u3"],
            "event_time": pd.Timestamp("2026-01-05"),
            "country": ["United States", "US", "Atlantis"],
            "plan": ["free", "pro", "free"],
            "tenure_days": [1.0, 2.0, 3.0],
            "score_hint": [0.1, 0.2, 0.3],
            "auto_renew": [True, False, True],
        }
    )
    checked = check_predictions(frame, c, "test")
    assert sorted(checked.good["request_id"]) == ["r1", "r2"]
    assert checked.good.set_index("request_id").loc["r1", "country"] == "United States"


def test_a_served_name_is_scored_like_its_code():
    from driftline.settings import TrainingSettings
    from driftline.training import score, train

    rng = np.random.default_rng(0)
    n = 400
    c = _contract({"United States": "US"})
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.uniform(0, 1000, n),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )
    frame["churned"] = ((frame["country"] == "US") ^ (rng.random(n) < 0.2)).astype(int)
    model = train(frame, c, TrainingSettings(estimator_params={"max_iter": 20}))
    named = frame.assign(country=frame["country"].replace({"US": "United States"}))
    np.testing.assert_array_equal(score(model.pipeline, named, c), score(model.pipeline, frame, c))
