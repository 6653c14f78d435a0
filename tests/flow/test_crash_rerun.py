"""Crash the weekly run at every registry step, rerun it: one version for the week, a champion, one chain.

The crash is a BaseException raised from the registry's checkpoint hook, in process: it unwinds
through the step like a kill would stop it (nothing after the checkpoint runs). Process kills
of the same steps are in tests/unit/test_switch_adversary.py.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from typing import Any

import pandas as pd
import pytest
import yaml

from driftline import pipeline
from driftline.contract import load_contract
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow
START = pd.Timestamp("2026-01-05")
AS_OF = START + pd.Timedelta(weeks=5, hours=3)


class Crash(BaseException):
    """Stops the run at a checkpoint, as a kill would."""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash-template")
    sim = simulate(weeks=6, users=600, scenarios="stable", seed=8, start=START.date())
    cfg = {
        "home": str(root / "home"),
        "contract": str(sim.contract.save(root / "contract.yaml")),
        "model_name": "crash-test",
        "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 0},
        "sampling": {"test_size": 300},
        "training": {"estimator_params": {"max_iter": 20}, "min_train_rows": 100},
        "gates": {"bootstrap_resamples": 200},
    }
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    s = load_settings(root / "driftline.yaml")
    s.ensure_home()
    store = Store.from_settings(s, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    store.dispose()
    return root


def _context(root) -> pipeline.Context:
    s = load_settings(root / "driftline.yaml")
    c = load_contract(s.contract)
    return pipeline.Context(s, c, Store.from_settings(s, c).create(), ModelRegistry.from_settings(s), "test")


def _checkpoints(template, tmp_path) -> list[str]:
    root = tmp_path / "count"
    shutil.copytree(template, root)
    _rewrite_home(root)
    seen: list[str] = []
    ctx = _context(root)
    ctx.registry.checkpoint_hook = seen.append
    assert pipeline.run_week(ctx, AS_OF).status == "registered"
    return seen


def _rewrite_home(root) -> None:
    cfg = yaml.safe_load((root / "driftline.yaml").read_text())
    cfg["home"] = str(root / "home")
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))


def test_a_bootstrap_crashed_at_any_registry_step_is_finished_by_the_rerun(template, tmp_path):
    steps = _checkpoints(template, tmp_path)
    # register (run, model, version, record) + challenger (intent, moved, recorded) + champion (same)
    assert steps.count("intent_written") == 2 and "model_logged" in steps and "registered" in steps
    for k, step in enumerate(steps):
        root = tmp_path / f"crash-{k}"
        shutil.copytree(template, root)
        _rewrite_home(root)
        ctx = _context(root)
        count = iter(range(len(steps)))

        def hook(name: str, k: int = k, count: Any = count) -> None:
            if next(count) == k:
                raise Crash(name)

        ctx.registry.checkpoint_hook = hook
        with pytest.raises(Crash):
            pipeline.run_week(ctx, AS_OF)

        rerun = _context(root)  # a new caller, as after a restart
        outcome = pipeline.run_week(rerun, AS_OF)
        reg = rerun.registry
        where = f"crash at checkpoint {k} ({step})"
        assert [v.version for v in reg.list_versions()] == ["1"], where
        assert reg.alias_version("champion") == "1", where
        assert reg.registration("1").state == "registered", where
        moves = reg.history("champion")
        assert {m.state for m in moves} <= {"done", "aborted"} and moves[-1].state == "done", where
        assert [m.prev_seq for m in moves[1:]] == [m.seq for m in moves[:-1]], where
        done = [m for m in moves if m.state == "done"]
        assert done[0].from_version is None, where
        assert all(a.to_version == b.from_version for a, b in pairwise(done)), where
        # The rerun either finds the week's version (and finishes its moves), or — when reading
        # the champion already settled the crashed promotion — decides there is nothing to retrain.
        registered = outcome.summary.get("registration")
        assert (registered or {}).get("version", "1") == "1", where
        assert registered is not None or outcome.summary["action"] == "no retrain", where
