"""The split-work flows in the embedded default: no Dask address, the same tasks in the flow's process."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import yaml

START = pd.Timestamp("2026-01-05")


def test_backtest_flow_without_dask_equals_the_weekly_backtest(tmp_path):
    from driftline import weekly
    from driftline.settings import load_settings
    from driftline.simulate import simulate
    from driftline.store import Store
    from flows.backtest import backtest

    sim = simulate(weeks=7, users=300, scenarios="stable", seed=2, start=START.date())
    config = tmp_path / "driftline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "contract": str(sim.contract.save(tmp_path / "contract.yaml")),
                "windows": {"train_weeks": 2, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
                "training": {"estimator": "logistic_regression", "min_train_rows": 20},
            }
        )
    )
    settings = load_settings(config)
    assert settings.scale.dask_address is None
    settings.ensure_home()
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    as_of = START + pd.Timedelta(weeks=6, hours=3)

    out = backtest(as_of=as_of.to_pydatetime(), config=str(config))
    window = weekly.load_window(store, sim.contract, settings, weekly.Week.of(as_of, settings.windows))
    expected = weekly.run_backtest(
        SimpleNamespace(folds=window.folds, labelled=window.labelled), sim.contract, settings
    )
    assert out["folds"] == 2
    assert out["result"]["windows"] == expected["windows"]
    assert out["result"]["chosen_train_weeks"] == expected["chosen_train_weeks"]
