"""Work that splits (driftline.scale) gives exactly the unsplit answer; locations and URL homes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from driftline import io, scale
from driftline.drift import compare, count_window, fit_profile
from driftline.errors import ConfigError, InputError
from driftline.settings import load_settings

START = pd.Timestamp("2026-01-05")


@pytest.fixture(scope="module")
def sim():
    from driftline.simulate import simulate

    return simulate(weeks=6, users=400, scenarios="covariate_shift", seed=3, start=START.date())


def _write_partitions(frame: pd.DataFrame, root, segment: str) -> list[str]:
    """Hive folders by segment, two files each; the segment column lives only in the folder name."""
    for value, part in frame.groupby(segment):
        half = len(part) // 2
        for i, chunk in enumerate((part.iloc[:half], part.iloc[half:])):
            io.write_parquet(chunk.drop(columns=[segment]), io.join(root, f"{segment}={value}", f"part-{i}.parquet"))
    (root / "_SUCCESS").write_text("")
    return scale.list_partitions(str(root))


def test_partition_counts_merge_to_the_whole_window(sim, tmp_path):
    c = sim.contract
    settings = load_settings(None)
    t = sim.traffic[c.timestamp]
    reference = sim.traffic[t < START + pd.Timedelta(weeks=3)]
    current = sim.traffic[t >= START + pd.Timedelta(weeks=4)].reset_index(drop=True)
    profile = fit_profile(reference, c, settings.drift)
    parts = _write_partitions(current, tmp_path / "window", c.segment)
    assert len(parts) >= 4 and all(p.endswith(".parquet") for p in parts)

    counts = [scale.count_partition(profile, p, contract=c, batch_rows=97) for p in reversed(parts)]
    merged = scale.merge_counts(counts)
    whole = count_window(profile, c.apply_aliases(current), list(profile.features))
    assert merged.n_rows == whole.n_rows == len(current)
    for name, fc in whole.features.items():
        assert np.array_equal(merged.features[name].counts, fc.counts), name
    assert set(merged.segments) == set(whole.segments)
    for value, sc in whole.segments.items():
        assert merged.segments[value].n_rows == sc.n_rows
        for name in sc.features:
            assert np.array_equal(merged.segments[value].features[name], sc.features[name])

    split = scale.evaluate_counts(profile, merged, settings.drift, c)
    direct = compare(profile, current, settings.drift, c)
    assert {f.name: f.psi for f in split.by_severity()} == {f.name: f.psi for f in direct.by_severity()}
    assert split.decision.action == direct.decision.action


def test_partition_errors_are_one_line(sim, tmp_path):
    c = sim.contract
    profile = fit_profile(sim.traffic, c, load_settings(None).drift)
    with pytest.raises(InputError, match="no Parquet files"):
        scale.list_partitions(str(tmp_path))
    io.write_parquet(sim.traffic[["tenure_days"]].head(5), tmp_path / "thin.parquet")
    with pytest.raises(InputError, match="missing feature column"):
        scale.count_partition(profile, str(tmp_path / "thin.parquet"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot read as parquet"):
        scale.count_partition(profile, str(tmp_path / "bad.parquet"))
    with pytest.raises(InputError, match="no rows"):
        scale.merge_counts([])


def test_split_backtest_equals_the_weekly_backtest(sim):
    from driftline import weekly
    from driftline.labels import join_labels_with_stats

    s = load_settings(
        None,
        windows={"train_weeks": 2, "test_weeks": 1, "label_delay_days": 0, "backtest_folds": 2,
                 "candidate_train_weeks": [1]},
        training={"estimator": "logistic_regression", "min_train_rows": 20},
    )  # fmt: skip
    as_of = START + pd.Timedelta(weeks=6)
    week = weekly.Week.of(as_of, s.windows)
    labelled, _ = join_labels_with_stats(sim.traffic, sim.outcomes, sim.contract, as_of, 0)
    window = SimpleNamespace(folds=list(week.folds), labelled=labelled)
    expected = weekly.run_backtest(window, sim.contract, s)
    got = scale.run_backtest(labelled, list(week.folds), sim.contract, s)
    assert len(scale.backtest_plan(list(week.folds), s)) == 4
    assert got["chosen_train_weeks"] == expected["chosen_train_weeks"]
    assert got["windows"] == expected["windows"]  # the same models on the same rows: the same numbers
    assert [(f["fold"], f["n_train"], f["average_precision"]) for f in got["folds"]] == [
        (f["fold"], f["n_train"], f["average_precision"]) for f in expected["folds"]
    ]
    assert scale.run_backtest(labelled, [], sim.contract, s) is None


def test_local_locations_round_trip(tmp_path):
    target = io.join(tmp_path, "a", "b.txt")
    assert io.write_text(target, "hi") == target and io.read_bytes(target) == b"hi" and io.exists(target)
    assert not io.is_url(target) and io.is_url("s3://bucket/key") and not io.is_url("file:///tmp/x")
    with pytest.raises(InputError, match="not found"):
        io.read_bytes(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"not a usable location|needs"):
        io.filesystem("nosuchscheme://x/y")


def test_home_url_moves_outputs_to_the_store_and_scratch_stays_local(tmp_path, monkeypatch):
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        "home: s3://bucket/driftline/\nstore_url: postgresql+psycopg://u@h/db\nmlflow_tracking_uri: http://m:5000\n"
    )
    monkeypatch.delenv("DRIFTLINE_HOME")
    s = load_settings(cfg)
    assert s.scale.outputs == "s3://bucket/driftline" and s.outputs_root == "s3://bucket/driftline"
    assert s.output_location("reports", "r.html") == "s3://bucket/driftline/reports/r.html"
    assert s.home.is_absolute() and not str(s.home).startswith(str(tmp_path))  # not "relative to the file"
    cfg.write_text("home: s3://bucket/driftline\n")
    with pytest.raises(ConfigError, match="set store_url and mlflow_tracking_uri"):
        load_settings(cfg)
    plain = load_settings(None, scale={"dask_address": "tcp://127.0.0.1:8786"})
    assert plain.outputs_root == str(plain.home) and plain.scale.dask_address == "tcp://127.0.0.1:8786"
    with pytest.raises(ConfigError, match="dask_address"):
        load_settings(None, scale={"dask_address": " "})
