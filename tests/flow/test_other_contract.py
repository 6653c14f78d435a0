"""The weekly flow on data that is not the simulator's: other column names, a text label,
no segment column, a 3-day label delay, files ingested through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from driftline.cli import _common, build_app

pytestmark = pytest.mark.slow


def _fraud_files(root, rng: np.random.Generator, weeks: int = 7, per_week: int = 700):
    n = weeks * per_week
    ts = pd.Timestamp("2026-03-02") + pd.to_timedelta(np.sort(rng.uniform(0, weeks * 7 * 86400, n)), unit="s")
    amount = rng.lognormal(3.5, 1.0, n).round(2)
    foreign = rng.random(n) < 0.2
    cat = rng.choice(["grocery", "travel", "electronics", "fuel", "gaming"], n, p=[0.4, 0.15, 0.15, 0.2, 0.1])
    logit = -3.2 + 0.9 * foreign + 0.6 * (cat == "gaming") + 0.4 * np.log(amount / 30)
    fraud = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    txn = pd.DataFrame(
        {
            "txn_id": [f"t{i:06d}" for i in range(n)],
            "card": [f"c{k:04d}" for k in rng.integers(0, 900, n)],
            "ts": ts,
            "amount": amount,
            "merchant_cat": cat,
            "is_foreign": foreign,
        }
    )
    outcomes = txn[["txn_id", "card"]].assign(fraud=fraud, observed_time=ts + pd.Timedelta(days=3))
    txn.to_parquet(root / "txn.parquet")
    outcomes.to_csv(root / "labels.csv", index=False)
    return txn.assign(fraud=fraud)


def test_bootstrap_and_forced_retrain_on_a_fraud_contract(tmp_path, capsys):
    frame = _fraud_files(tmp_path, np.random.default_rng(3))
    frame.to_parquet(tmp_path / "with_label.parquet")
    cli = build_app()
    argv = ["contract", "infer", str(tmp_path / "with_label.parquet"), "--target", "fraud", "--timestamp", "ts"]
    assert (
        _common.run(cli, [*argv, "--id", "card", "--request-id", "txn_id", "--positive", "yes", "--name", "fraud"]) == 0
    )
    (tmp_path / "contract.yaml").write_text(capsys.readouterr().out)
    cfg = {
        "home": str(tmp_path / "home"),
        "contract": str(tmp_path / "contract.yaml"),
        "model_name": "fraud",
        "windows": {"train_weeks": 3, "label_delay_days": 3, "backtest_folds": 1},
        "training": {"estimator": "logistic_regression", "min_train_rows": 100},
        "sampling": {"test_size": 400},
    }
    (tmp_path / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    config = str(tmp_path / "driftline.yaml")
    for f in ("txn.parquet", "labels.csv"):
        assert _common.run(cli, ["--config", config, "ingest", str(tmp_path / f), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["stored"] == len(frame) and report["quarantined"] == 0

    from flows.refresh_and_retrain import refresh_and_retrain

    as_of = pd.Timestamp("2026-04-13 03:00")
    first = refresh_and_retrain(as_of=as_of.to_pydatetime(), config=config, return_state=True)
    assert first.is_completed(), first.message
    s = first.result()
    assert s["action"] == "promoted" and s["drift"]["trigger"] == "bootstrap"
    # Test window: the last whole week whose labels (3 days) have all arrived by as_of.
    assert (
        s["window"]["split"]["test_start"] == "2026-04-06T00:00:00" or s["window"]["split"]["test_end"] <= "2026-04-13"
    )
    assert 0 < s["candidate_metrics"]["average_precision"] <= 1

    # A forced retrain of the same week trains on the same data: it finds that week's version
    # instead of registering a copy, whichever trigger started it.
    second = refresh_and_retrain(as_of=as_of.to_pydatetime(), config=config, force_retrain=True, return_state=True)
    assert second.is_completed(), second.message
    s2 = second.result()
    assert s2["drift"]["trigger"] == "manual" and s2["action"] == "already registered"
    assert (s2["registration"]["version"], s2["registration"]["created"]) == ("1", False)
    assert s2["champion_metrics"]["average_precision"] == pytest.approx(s["candidate_metrics"]["average_precision"])

    # The same flow from the CLI: the champion (v1) is fresh, so the policy decides not to retrain.
    code = _common.run(
        cli, ["--config", config, "run", "refresh-and-retrain", "--as-of", "2026-04-13T03:00:00", "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["state"] == "COMPLETED", out
    assert out["summary"]["action"] == "no retrain" and out["summary"]["drift"]["trigger"] is None
    assert _common.run(cli, ["--config", config, "run", "nonsense"]) == 2
    assert "unknown flow 'nonsense'" in capsys.readouterr().err
