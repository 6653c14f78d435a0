"""compare / compare_parquet: exact numbers on tiny windows, chunks, streaming, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from driftline.contract import Contract, parse_contract
from driftline.drift import compare, compare_parquet, fit_profile
from driftline.drift import stats as st
from driftline.errors import InputError
from driftline.settings import DriftSettings
from tests.conftest import TINY_CONTRACT


def retyped(contract: Contract) -> Contract:
    """The same contract with one feature retyped: other columns, so profiles must not match."""
    data = contract.model_dump(mode="json")
    data["features"]["score_hint"] = {"type": "categorical", "nullable": True}
    return parse_contract(data)


def make(n: int, seed: int, *, shift: float = 0.0, countries=("US", "GB", "DE")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "country": rng.choice(list(countries), n),
            "plan": rng.choice(["free", "pro"], n, p=[0.7, 0.3]),
            "tenure_days": rng.exponential(300, n) * (1 + shift),
            "score_hint": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "auto_renew": rng.random(n) < 0.4,
            "score": rng.random(n),
            "churned": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def settings() -> DriftSettings:
    return DriftSettings(segment_min_rows=50)


def test_hand_worked_window(tiny_contract: Contract) -> None:
    # Reference tenure 1..10 in 2 bins (edge 5); current puts 3 of 4 rows above it.
    ref = pd.DataFrame(
        {
            "country": ["US"] * 10,
            "plan": ["free", "pro"] * 5,
            "tenure_days": np.arange(1.0, 11.0),
            "score_hint": 0.0,
            "auto_renew": [True, False] * 5,
        }
    )
    s = DriftSettings(bins=2, min_rows=1)
    p = fit_profile(ref, tiny_contract, s)
    cur = ref.head(4).assign(tenure_days=[1.0, 6.0, 7.0, 8.0])
    r = compare(p, cur, s)
    f = r.features["tenure_days"]
    # buckets: (-inf, 5], (5, inf), missing(empty both sides, dropped): ref 0.5/0.5, cur 0.25/0.75
    psi = 0.25 * math.log(0.75 / 0.5) + 0.25 * math.log(0.5 / 0.25)
    assert f.psi == pytest.approx(psi, abs=1e-15)
    assert f.kl == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-15)
    assert f.reference == [0.5, 0.5, 0.0] and f.current == [0.25, 0.75, 0.0]
    assert f.n_current == 4 and f.n_reference == 10
    # PSI 0.27 would be an alert on a big window; on 4 rows the sample-size band is far higher.
    assert f.band.method == "monte_carlo" and f.band.warn > psi and f.severity == "stable"
    country = r.features["country"]
    assert country.psi == 0.0 and country.unseen_share == 0.0 and country.missing_share == 0.0


def test_report_numbers_match_an_independent_computation(tiny_contract: Contract, settings: DriftSettings) -> None:
    ref, cur = make(2000, 1), make(1500, 2, shift=0.4)
    p = fit_profile(ref, tiny_contract, settings)
    r = compare(p, cur, settings)
    # Independent: numpy quantiles of the reference, np.histogram of current, scipy entropy.
    x = ref["tenure_days"].to_numpy()
    edges = np.unique(np.quantile(x, np.arange(1, 10) / 10, method="inverted_cdf"))
    full = np.r_[-np.inf, edges, np.inf]
    ref_c = np.histogram(x, full)[0]
    cur_c = np.histogram(cur["tenure_days"].to_numpy(), full)[0]
    # np.histogram bins are [a, b); ours are (a, b]: continuous data has no ties at edges except
    # the reference values that *are* edges, which move one bin down.
    ref_c = ref_c + np.r_[np.isin(edges, x).astype(int), 0] - np.r_[0, np.isin(edges, x).astype(int)]
    assert r.features["tenure_days"].reference[:-1] == pytest.approx(list(ref_c / ref_c.sum()), abs=1e-15)
    rp = np.where(ref_c == 0, 1e-4, ref_c / ref_c.sum())
    cp = np.where(cur_c == 0, 1e-4, cur_c / cur_c.sum())
    rp, cp = rp / rp.sum(), cp / cp.sum()
    expected_psi = float(np.sum((cp - rp) * np.log(cp / rp)))
    assert r.features["tenure_days"].psi == pytest.approx(expected_psi, abs=1e-12)
    counts = cur["plan"].value_counts()
    ref_counts = ref["plan"].value_counts()
    table = np.array([[ref_counts["free"], ref_counts["pro"]], [counts["free"], counts["pro"]]])
    assert r.features["plan"].psi == pytest.approx(st.distance("psi", table[0], table[1]), abs=1e-15)
    assert r.features["plan"].severity == "stable"
    assert r.features["tenure_days"].severity in ("warn", "alert")


def test_chunks_merge_to_the_whole_window(tiny_contract: Contract, settings: DriftSettings) -> None:
    ref, cur = make(3000, 3), make(2500, 4, shift=0.2)
    p = fit_profile(ref, tiny_contract, settings, "score", "churned")
    whole = compare(p, cur, settings).to_dict()
    parts = compare(p, (cur.iloc[i : i + 333] for i in range(0, len(cur), 333)), settings).to_dict()
    assert parts == whole


def test_compare_parquet_streams_to_the_same_report(tiny_contract: Contract, settings: DriftSettings, tmp_path) -> None:
    ref, cur = make(3000, 5), make(2000, 6, shift=0.3)
    cur.loc[::7, "country"] = "FR"
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, row_group_size=500)
    p = fit_profile(ref, tiny_contract, settings, "score", "churned")
    streamed = compare_parquet(p, path, settings, batch_size=256, contract=tiny_contract)
    assert streamed.to_dict() == compare(p, cur, settings).to_dict()
    assert streamed.features["country"].unseen_values == {"FR": int((cur["country"] == "FR").sum())}


def test_unseen_values_are_counted_and_reported(tiny_contract: Contract, settings: DriftSettings) -> None:
    ref = make(1000, 7)
    cur = make(1000, 8)
    cur.loc[:299, "country"] = "United States"
    p = fit_profile(ref, tiny_contract, settings)
    f = compare(p, cur, settings).features["country"]
    assert f.unseen_share == pytest.approx(0.3)
    assert f.unseen_values == {"United States": 300}
    assert f.severity == "alert"


def test_insufficient_data_below_min_rows(tiny_contract: Contract) -> None:
    s = DriftSettings(min_rows=100)
    p = fit_profile(make(1000, 9), tiny_contract, s)
    r = compare(p, make(99, 10, shift=3.0), s)
    assert {f.severity for f in r.features.values()} == {"insufficient_data"}
    assert r.decision.action == "none"
    assert "insufficient data" in r.decision.reasons[0]


def test_per_feature_override_from_contract(settings: DriftSettings) -> None:
    data = json.loads(json.dumps(TINY_CONTRACT))
    data["features"]["tenure_days"]["drift"] = {"warn": 0.15}
    con = parse_contract(data)
    p = fit_profile(make(5000, 11), con, settings)
    f = compare(p, make(5000, 12), settings).features["tenure_days"]
    assert (f.band.configured_warn, f.band.configured_alert) == (0.15, 0.25)
    assert f.to_dict()["effective_threshold"] >= 0.15


def test_exact_ks_on_raw_values(tiny_contract: Contract, settings: DriftSettings) -> None:
    ref, cur = make(800, 13), make(600, 14, shift=0.1)
    p = fit_profile(ref, tiny_contract, settings)
    f = compare(p, cur, settings, exact_reference=ref).features["tenure_days"]
    res = ks_2samp(ref["tenure_days"], cur["tenure_days"])
    assert f.test == "ks_exact"
    assert f.p_value == pytest.approx(res.pvalue, abs=1e-12)


def test_prediction_label_and_performance(tiny_contract: Contract, settings: DriftSettings) -> None:
    ref, cur = make(2000, 15), make(1000, 16)
    cur["score"] = cur["score"] ** 2  # fewer predicted positives
    p = fit_profile(ref, tiny_contract, settings, "score", "churned", threshold=0.5)
    r = compare(p, cur, settings)
    ppr = r.predicted_positive_rate
    assert ppr["reference"] == pytest.approx((ref["score"] >= 0.5).mean())
    assert ppr["current"] == pytest.approx((cur["score"] >= 0.5).mean())
    assert ppr["relative"] == pytest.approx(ppr["current"] / ppr["reference"] - 1)
    assert r.label_rate["current"] == pytest.approx(cur["churned"].mean())
    assert r.performance is not None
    assert set(r.performance["change"]) >= {"roc_auc", "average_precision", "precision", "recall"}
    assert r.score is not None and r.score.severity == "alert"
    d = r.to_dict()
    assert d["prediction"]["score"]["psi"] == r.score.psi
    json.dumps(d, allow_nan=False)


def test_segments_are_compared_per_value(tiny_contract: Contract) -> None:
    s = DriftSettings(segment_min_rows=200)
    ref = make(3000, 17)
    cur = make(3000, 18)
    us = cur["country"] == "US"
    cur.loc[us, "tenure_days"] = cur.loc[us, "tenure_days"] * 3
    p = fit_profile(ref, tiny_contract, s)
    seg = compare(p, cur, s).to_dict()["segments"]
    assert seg["column"] == "country" and set(seg["values"]) == {"US", "GB", "DE"}
    assert seg["values"]["US"]["features"]["tenure_days"]["severity"] == "alert"
    assert seg["values"]["GB"]["features"]["tenure_days"]["severity"] == "stable"
    assert seg["values"]["US"]["n_current"] == int(us.sum())


def test_bad_input_is_one_line(tiny_contract: Contract, settings: DriftSettings, tmp_path) -> None:
    p = fit_profile(make(500, 19), tiny_contract, settings)
    with pytest.raises(InputError, match="unknown feature"):
        compare(p, make(500, 20), settings, features=["nope"])
    with pytest.raises(InputError, match=r"cur\.csv: missing feature column"):
        compare(p, make(500, 20).drop(columns="plan"), settings, source="cur.csv")
    with pytest.raises(InputError, match="no rows"):
        compare(p, make(500, 20).head(0), settings)
    with pytest.raises(InputError, match="no rows"):
        compare(p, iter([]), settings)
    with pytest.raises(InputError, match="fitted for contract"):
        compare(p, make(500, 20), settings, retyped(tiny_contract))
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InputError, match="cannot read as parquet"):
        compare_parquet(p, bad, settings)
    with pytest.raises(InputError, match="file not found"):
        compare_parquet(p, tmp_path / "absent.parquet", settings)


def test_feature_subset(tiny_contract: Contract, settings: DriftSettings) -> None:
    p = fit_profile(make(500, 21), tiny_contract, settings)
    r = compare(p, make(500, 22)[["plan", "country"]], settings, features=["plan"])
    assert list(r.features) == ["plan"]


def test_fixed_bands_when_adaptive_bands_is_off(tiny_contract: Contract) -> None:
    p = fit_profile(make(3000, 23), tiny_contract, DriftSettings())
    small = make(120, 24)
    adaptive = compare(p, small, DriftSettings()).features["tenure_days"].band
    fixed = compare(p, small, DriftSettings(adaptive_bands=False)).features["tenure_days"].band
    assert adaptive.method == "monte_carlo" and adaptive.warn > 0.1
    assert (fixed.method, fixed.warn, fixed.alert) == ("configured", 0.1, 0.25)


def test_contract_in_force_sets_thresholds_and_key_flags_of_a_stored_profile(tiny_contract):
    """Tuning a threshold or a key flag keeps the stored profile usable and takes effect at once."""
    import numpy as np
    import pandas as pd

    from driftline.contract import parse_contract
    from driftline.drift import compare, fit_profile
    from driftline.settings import DriftSettings

    rng = np.random.default_rng(0)

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "country": rng.choice(["US", "GB", "DE"], n),
                "plan": rng.choice(["free", "pro"], n),
                "tenure_days": rng.normal(300 + shift, 50, n),
                "score_hint": rng.random(n),
                "auto_renew": rng.random(n) < 0.5,
            }
        )

    settings = DriftSettings(adaptive_bands=False)
    profile = fit_profile(frame(5000, 0), tiny_contract, settings)
    current = frame(5000, 25)  # a moderate shift of tenure_days
    before = compare(profile, current, settings, tiny_contract).features["tenure_days"]
    tuned = tiny_contract.model_dump(mode="json")
    tuned["features"]["tenure_days"].update({"drift": {"warn": 0.01, "alert": 0.02}, "key": True})
    after = compare(profile, current, settings, parse_contract(tuned)).features["tenure_days"]
    assert after.psi == before.psi
    assert (after.band.warn, after.band.alert, after.key) == (0.01, 0.02, True)
    assert after.severity == "alert" and before.severity != "alert"
