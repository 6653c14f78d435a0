"""`driftline quickstart` on a generated file whose only id column is `id` (real Prefect, MLflow on SQLite)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.cli import _common, build_app
from driftline.cli.quickstart import plan_windows
from driftline.contract import load_contract
from driftline.errors import InputError
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.store import Store

pytestmark = pytest.mark.slow


def _loans(n: int = 1800, weeks: int = 5, seed: int = 0) -> pd.DataFrame:
    """Loans with one unique id per row, an event time, a 0/1 target and four kinds of feature."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.uniform(0, weeks * 7 * 86400, n).round(), unit="s")
    grade = rng.choice(list("ABCD"), n, p=[0.3, 0.3, 0.25, 0.15])
    income = rng.lognormal(10, 0.5, n).round()
    has_car = rng.random(n) < 0.4
    logit = -0.5 + 1.2 * (grade == "A") - 1.2 * (grade == "D") + 0.5 * has_car
    frame = pd.DataFrame(
        {
            "id": np.arange(500_000, 500_000 + n),
            "timestamp": ts,
            "income": income,
            "grade": grade,
            "region": rng.choice([101, 205, 309], n),  # integer codes
            "has_car": has_car,
            "repaid": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    return frame.sort_values("timestamp").reset_index(drop=True)


def test_quickstart_goes_from_a_file_to_a_first_weekly_decision(tmp_path, capsys):
    data = tmp_path / "loans.csv"
    frame = _loans()
    frame.to_csv(data, index=False)
    work = tmp_path / "project"
    argv = ["quickstart", str(data), "--target", "repaid", "--timestamp", "timestamp", "--id", "id"]
    code = _common.run(build_app(), [*argv, "--workdir", str(work)])
    out = capsys.readouterr().out
    assert code == 0, out
    for step in ("1. contract", "2. ingest", "3. profile", "4. first weekly run", "Review:", "Next:"):
        assert step in out
    assert "promoted version 1" in out and "region: integer codes" in out

    contract = load_contract(work / "contract.yaml")
    assert contract.request_id == "id_request" and contract.entity_id == "id"
    assert contract.features["region"].type == "categorical" and contract.target.positive == 1
    settings = load_settings(work / "driftline.yaml")
    assert settings.home == work / ".driftline" and settings.model_name == "loans"
    assert (settings.windows.train_weeks, settings.windows.backtest_folds) == (4, 3)
    assert (settings.reports_dir / "profile.json").exists()

    store = Store.from_settings(settings, contract)
    assert (store.count("predictions"), store.count("outcomes")) == (len(frame), len(frame))
    registry = ModelRegistry.from_settings(settings)
    (version,) = registry.list_versions()
    assert "champion" in version.aliases and registry.champion() is not None

    # A second quickstart into the same folder refuses instead of mixing two projects.
    assert _common.run(build_app(), [*argv, "--workdir", str(work)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_windows_fit_the_span_of_the_data():
    times = pd.Series(pd.to_datetime(["2026-01-05", "2026-03-20"]))  # 11 calendar weeks
    plan = plan_windows(times, label_delay_days=7)
    assert (plan.test_start, plan.train_weeks, plan.backtest_folds) == (pd.Timestamp("2026-03-16"), 8, 3)
    assert plan.as_of == pd.Timestamp("2026-03-30")
    short = plan_windows(pd.Series(pd.to_datetime(["2026-01-08", "2026-01-12"])), label_delay_days=0)
    assert (short.train_weeks, short.backtest_folds) == (1, 0)
    with pytest.raises(InputError, match="at least two calendar weeks"):
        plan_windows(pd.Series(pd.to_datetime(["2026-01-05", "2026-01-11"])), label_delay_days=7)
