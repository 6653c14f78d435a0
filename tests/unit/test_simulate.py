"""Simulator: determinism, the contract it promises, and that each scenario has its stated effect."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import numpy as np
import pandas as pd
import pycountry
import pytest

from driftline.contract import load_contract
from driftline.errors import InputError
from driftline.simulate import SCENARIOS, churn_contract, parse_scenarios, simulate, write_simulation

START = pd.Timestamp("2026-01-05")
TAIL = {"IS", "LU", "MT", "EE"}


def week_of(frame: pd.DataFrame, start: pd.Timestamp = START) -> np.ndarray:
    """Week index (from 0) of each row, computed from event_time."""
    return ((frame["event_time"] - start) // pd.Timedelta(days=7)).to_numpy()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stable() -> object:
    return simulate(weeks=8, users=3000, scenarios="stable", seed=7, shift_week=2)


# -- determinism ---------------------------------------------------------------------------


def test_same_arguments_write_identical_bytes(tmp_path) -> None:
    args = dict(weeks=4, users=500, scenarios="covariate_shift,concept_drift,country_names,long_tail", seed=3)
    a = write_simulation(simulate(**args), tmp_path / "a")
    b = write_simulation(simulate(**args), tmp_path / "b")
    assert set(a) == {"traffic", "outcomes", "contract", "meta"}
    for key in a:
        assert a[key].exists()
        assert digest(a[key]) == digest(b[key]), key


def test_different_seed_gives_different_traffic(tmp_path) -> None:
    a = write_simulation(simulate(4, 500, seed=1), tmp_path / "a")
    b = write_simulation(simulate(4, 500, seed=2), tmp_path / "b")
    assert digest(a["traffic"]) != digest(b["traffic"])
    assert digest(a["outcomes"]) != digest(b["outcomes"])


def test_written_files_read_back_equal(tmp_path) -> None:
    sim = simulate(3, 400, "country_names", seed=5)
    paths = write_simulation(sim, tmp_path / "out")
    pd.testing.assert_frame_equal(pd.read_parquet(paths["traffic"]), sim.traffic)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["outcomes"]), sim.outcomes)
    assert load_contract(paths["contract"]) == sim.contract == churn_contract()
    assert json.loads(paths["meta"].read_text()) == sim.meta


# -- shape and contract --------------------------------------------------------------------


def test_row_count_is_about_users_times_weeks_times_activity(stable) -> None:
    n = len(stable.traffic)
    expected = 3000 * 8 * 0.85
    assert abs(n - expected) < 0.03 * expected
    assert stable.meta["rows"] == n
    # At most one request per user per week.
    pairs = pd.DataFrame({"user": stable.traffic["user_id"], "week": week_of(stable.traffic)})
    assert not pairs.duplicated().any()


def test_columns_and_dtypes_follow_the_contract(stable) -> None:
    t, c = stable.traffic, stable.contract
    assert list(t.columns) == c.row_columns
    assert c.feature_names == [
        "country", "plan", "device", "tenure_days", "sessions_per_week", "days_since_last_login",
        "support_tickets", "payment_failures", "query_length_mean", "auto_renew",
    ]  # fmt: skip
    assert (c.name, c.entity_id, c.request_id, c.timestamp, c.segment) == (
        "churn", "user_id", "request_id", "event_time", "country",
    )  # fmt: skip
    assert c.target.name == "churned" and c.target.positive == 1
    assert c.key_features == ["country", "sessions_per_week"]
    assert c.features["plan"].closed and not c.features["country"].closed and not c.features["device"].closed
    assert c.features["query_length_mean"].drift.warn == 0.15
    assert c.features["query_length_mean"].drift.alert == 0.25
    assert t["event_time"].dtype == np.dtype("datetime64[us]")
    assert t["event_time"].dt.tz is None
    for col in ["request_id", "user_id", *c.categorical]:
        assert pd.api.types.is_string_dtype(t[col]), col
    for col in c.numeric:
        assert pd.api.types.is_numeric_dtype(t[col]) and not pd.api.types.is_bool_dtype(t[col]), col
    assert t["auto_renew"].dtype == bool
    assert not t.isna().any().any()
    assert t["request_id"].is_unique
    assert t["event_time"].is_monotonic_increasing
    assert t["user_id"].str.fullmatch(r"u\d{6}").all()
    assert t["request_id"].str.fullmatch(r"r7-\d{9}").all()


def test_stable_values_satisfy_the_contract(stable) -> None:
    t, c = stable.traffic, stable.contract
    for name, f in c.features.items():
        if f.range is not None:
            lo, hi = f.range
            assert t[name].between(lo, hi).all(), name
        if f.vocabulary is not None:
            assert set(t[name]) <= set(f.vocabulary), name
    # The country vocabulary is exactly the codes stable traffic uses.
    assert set(t["country"]) == set(c.features["country"].vocabulary)
    assert all(pycountry.countries.get(alpha_2=code) is not None for code in t["country"].unique())


def test_closed_plan_vocabulary_holds_in_every_scenario() -> None:
    sim = simulate(4, 2000, ",".join(SCENARIOS), seed=1)
    assert set(sim.traffic["plan"]) <= set(sim.contract.features["plan"].vocabulary)


def test_labels_are_observed_seven_days_after_the_request(stable) -> None:
    t, o = stable.traffic, stable.outcomes
    assert list(o.columns) == ["request_id", "user_id", "churned", "observed_time"]
    assert o["request_id"].equals(t["request_id"]) and o["user_id"].equals(t["user_id"])
    assert ((o["observed_time"] - t["event_time"]) == pd.Timedelta(days=7)).all()
    assert o["churned"].dtype == np.int64 and set(o["churned"].unique()) <= {0, 1}
    rate = o["churned"].mean()
    assert 0.10 <= rate <= 0.20
    assert stable.meta["churn_rate"] == pytest.approx(rate)


def test_event_times_stay_in_their_weeks_with_quieter_weekends() -> None:
    start = date(2026, 1, 7)  # a Wednesday: weekends are still Saturday and Sunday
    sim = simulate(6, 3000, seed=2, start=start)
    t = sim.traffic["event_time"]
    assert t.min() >= pd.Timestamp(start) and t.max() < pd.Timestamp(start) + pd.Timedelta(weeks=6)
    per_day = t.dt.day_of_week.value_counts()
    weekday, weekend = per_day[[0, 1, 2, 3, 4]].mean(), per_day[[5, 6]].mean()
    assert 0.45 <= weekend / weekday <= 0.65
    assert sim.meta["start"] == "2026-01-07"


# -- scenarios -----------------------------------------------------------------------------


def test_covariate_shift_moves_sessions_mean_from_shift_week_only(stable) -> None:
    shifted = simulate(weeks=8, users=3000, scenarios="covariate_shift", seed=7, shift_week=2)
    t0, t1 = stable.traffic, shifted.traffic
    before, after = week_of(t0) < 2, week_of(t0) >= 2
    # Before week 2 nothing differs; from week 2 only sessions_per_week moves.
    pd.testing.assert_frame_equal(t1[before], t0[before])
    pd.testing.assert_frame_equal(t1.drop(columns="sessions_per_week"), t0.drop(columns="sessions_per_week"))
    ratio = t1.loc[after, "sessions_per_week"].mean() / t0.loc[after, "sessions_per_week"].mean()
    assert ratio == pytest.approx(0.7, abs=0.02)
    cs = shifted.meta["parameters"]["covariate_shift"]
    assert cs["feature"] == "sessions_per_week" and cs["from_week"] == 2
    assert cs["expected_mean_before"] == pytest.approx(8.0)
    assert cs["expected_mean_after"] == pytest.approx(8.0 * 0.7)
    assert cs["expected_mean_change"] == pytest.approx(-2.4)
    # The simulated means match the expected ones (population mean 8 = Gamma(1.6, 5)).
    assert t0["sessions_per_week"].mean() == pytest.approx(cs["expected_mean_before"], rel=0.06)
    assert t1.loc[after, "sessions_per_week"].mean() == pytest.approx(cs["expected_mean_after"], rel=0.06)


@pytest.mark.parametrize("size", [0.5, -0.2])
def test_covariate_shift_size_is_configurable(stable, size: float) -> None:
    shifted = simulate(8, 3000, "covariate_shift", seed=7, shift_week=2, shift_size=size)
    after = week_of(stable.traffic) >= 2
    ratio = (
        shifted.traffic.loc[after, "sessions_per_week"].mean() / stable.traffic.loc[after, "sessions_per_week"].mean()
    )
    assert ratio == pytest.approx(1 - size, abs=0.02)


def test_country_names_replace_codes_from_shift_week(stable) -> None:
    named = simulate(weeks=8, users=3000, scenarios="country_names", seed=7, shift_week=2)
    t0, t1 = stable.traffic, named.traffic
    before, after = week_of(t0) < 2, week_of(t0) >= 2
    codes = set(stable.contract.features["country"].vocabulary)
    assert set(t1.loc[before, "country"]) <= codes
    assert not set(t1.loc[after, "country"]) & codes
    expected = t0.loc[after, "country"].map(lambda c: pycountry.countries.get(alpha_2=c).name)
    assert t1.loc[after, "country"].equals(expected)
    assert {"United States", "United Kingdom", "Germany"} <= set(t1.loc[after, "country"])
    pd.testing.assert_frame_equal(t1.drop(columns="country"), t0.drop(columns="country"))
    pd.testing.assert_frame_equal(named.outcomes, stable.outcomes)


def test_concept_drift_changes_churn_of_new_users_with_tickets(stable) -> None:
    drift = simulate(weeks=8, users=3000, scenarios="concept_drift", seed=7, shift_week=2)
    t = stable.traffic
    wk = week_of(t)
    pd.testing.assert_frame_equal(drift.traffic, t)  # features unchanged: only P(churn | x) moves
    y0, y1 = stable.outcomes["churned"], drift.outcomes["churned"]
    assert y1[wk < 2].equals(y0[wk < 2])
    late = wk >= 2 + 3  # full strength after the 4-week ramp
    early_churners = late & (t["tenure_days"] < 90) & (t["support_tickets"] >= 1)
    assert early_churners.sum() >= 50
    assert y1[early_churners].mean() - y0[early_churners].mean() >= 0.25
    lapsed_veterans = late & (t["tenure_days"] > 365) & (t["days_since_last_login"] >= 20)
    assert lapsed_veterans.sum() >= 50
    assert y0[lapsed_veterans].mean() - y1[lapsed_veterans].mean() >= 0.15
    assert drift.meta["parameters"]["concept_drift"]["ramp_weeks"] == 4


def test_long_tail_adds_rare_segments_with_different_churn() -> None:
    sim = simulate(weeks=4, users=20000, scenarios="long_tail", seed=11)
    t, y = sim.traffic, sim.outcomes["churned"]
    share = t["country"].value_counts(normalize=True)
    rare = set(share.index) - set(sim.contract.features["country"].vocabulary)
    assert {"IS", "LU", "MT"} <= rare <= TAIL
    assert (share[list(rare)] < 0.005).all()
    overall = y.mean()
    assert y[t["country"].isin(["IS", "MT"])].mean() > 2 * overall
    assert y[t["country"] == "LU"].mean() < overall / 3
    enterprise = t["plan"] == "enterprise"
    assert 0 < enterprise.mean() < 0.005
    assert y[enterprise].mean() > 2 * overall
    # A uniform sample of 3000 rows misses some rare country.
    sample = t.sample(3000, random_state=np.random.default_rng(0))
    assert rare - set(sample["country"])


def test_stable_has_no_rare_segments(stable) -> None:
    assert not set(stable.traffic["country"]) & TAIL
    assert (stable.traffic["plan"] == "enterprise").mean() > 0.03


def test_scenarios_combine(stable) -> None:
    both = simulate(8, 3000, ["concept_drift", "country_names"], seed=7, shift_week=2)
    assert both.meta["scenarios"] == ["concept_drift", "country_names"]
    after = week_of(stable.traffic) >= 2
    assert not set(both.traffic.loc[after, "country"]) & set(stable.contract.features["country"].vocabulary)
    assert not both.outcomes["churned"].equals(stable.outcomes["churned"])


def test_meta_records_the_run(stable) -> None:
    m = stable.meta
    assert (m["scenarios"], m["seed"], m["weeks"], m["users"], m["start"], m["shift_week"]) == (
        ["stable"], 7, 8, 3000, "2026-01-05", 2,
    )  # fmt: skip
    assert simulate(6, 10).meta["shift_week"] == 3  # default weeks // 2
    json.dumps(m)


# -- arguments -----------------------------------------------------------------------------


def test_parse_scenarios() -> None:
    assert parse_scenarios("concept_drift,country_names") == ("concept_drift", "country_names")
    assert parse_scenarios(" Country_Names , concept_drift,concept_drift") == ("concept_drift", "country_names")
    assert parse_scenarios(["long_tail", "stable,covariate_shift"]) == ("covariate_shift", "long_tail")
    assert parse_scenarios("stable") == ("stable",)


@pytest.mark.parametrize("bad", ["drift", "stable,typo", ""])
def test_parse_scenarios_rejects_unknown_names_in_one_line(bad: str) -> None:
    with pytest.raises(InputError) as e:
        parse_scenarios(bad)
    msg = str(e.value)
    assert "\n" not in msg and all(name in msg for name in SCENARIOS)
    assert e.value.exit_code == 2


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(weeks=0, users=10), "weeks"),
        (dict(weeks=4, users=0), "users"),
        (dict(weeks=4, users=10, shift_week=4), "shift_week"),
        (dict(weeks=4, users=10, shift_size=1.0), "shift_size"),
        (dict(weeks=4, users=10, start="next monday"), "start"),
        (dict(weeks=4, users=10, scenarios="nope"), "unknown scenario"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict, words: str) -> None:
    with pytest.raises(InputError, match=words):
        simulate(**kwargs)


@pytest.mark.slow
def test_concept_drift_costs_an_old_model_average_precision_and_retraining_recovers() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        x = frame.drop(columns=["request_id", "user_id", "event_time"])
        return x.astype({c: "category" for c in ["country", "plan", "device"]})

    def fit(x: pd.DataFrame, y: pd.Series) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype").fit(x, y)

    scores = {}
    for name in ("stable", "concept_drift"):
        sim = simulate(weeks=10, users=8000, scenarios=name, seed=4, shift_week=3)
        x, y, wk = features(sim.traffic), sim.outcomes["churned"], week_of(sim.traffic)
        old = fit(x[wk < 3], y[wk < 3])
        recent = fit(x[(wk >= 6) & (wk < 9)], y[(wk >= 6) & (wk < 9)])
        test = wk == 9
        base = y[test].mean()
        scores[name] = {
            m: average_precision_score(y[test], model.predict_proba(x[test])[:, 1]) / base
            for m, model in (("old", old), ("recent", recent))
        }
    # Lift over the base rate: the old model keeps it on stable traffic, loses it under drift.
    assert scores["stable"]["old"] > 2.4
    assert scores["concept_drift"]["old"] < scores["stable"]["old"] - 0.6
    assert scores["concept_drift"]["recent"] > scores["concept_drift"]["old"] + 0.6


def test_scenarios_can_start_in_their_own_weeks():
    from driftline.simulate import parse_scenario_spec

    assert parse_scenario_spec("concept_drift@3, country_names@5") == (
        ("concept_drift", "country_names"),
        {"concept_drift": 3, "country_names": 5},
    )
    with pytest.raises(InputError, match="whole number"):
        parse_scenario_spec("country_names@x")
    sim = simulate(weeks=7, users=300, scenarios="concept_drift@2,country_names@5", seed=3)
    week = (sim.traffic["event_time"] - pd.Timestamp("2026-01-05")).dt.days // 7
    named = sim.traffic["country"].str.len() > 2
    assert not named[week < 5].any() and named[week >= 5].all()
    assert sim.meta["scenario_weeks"] == {"concept_drift": 2, "country_names": 5}
    assert sim.meta["parameters"]["country_names"]["from_week"] == 5
