"""The weekly flow end to end: real Prefect (harness), real MLflow on SQLite, real GX, a
simulated store. Paths: bootstrap, no retrain, performance-triggered retrain, gate failure,
validation failure, idempotent rerun."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-01-05")


def week(n: int) -> pd.Timestamp:
    """Monday 03:00 of week n, when the weekly schedule fires."""
    return START + pd.Timedelta(weeks=n, hours=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with 11 weeks of traffic whose concept drifts from week 5, and a config for it.

    Big enough (3,000 users, 2,500-row test sets) that the drop the drift causes is outside the
    metric's own uncertainty: the metric trigger only fires on drops it can tell from noise.
    """
    root = tmp_path_factory.mktemp("world")
    sim = simulate(weeks=11, users=3000, scenarios="concept_drift@5", seed=11)
    contract_path = sim.contract.save(root / "contract.yaml")
    cfg = {
        "home": str(root / "home"),
        "contract": str(contract_path),
        "model_name": "churn-test",
        "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
        "sampling": {"test_size": 2500},
        "training": {"estimator_params": {"max_iter": 40}, "min_train_rows": 100},
        "drift": {"metric_drop_retrain": 0.10},
    }
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    settings = load_settings(root / "driftline.yaml")
    settings.ensure_home()
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    return {"root": root, "config": str(root / "driftline.yaml"), "settings": settings, "sim": sim}


def _run(world, as_of, **kw):
    from flows.refresh_and_retrain import refresh_and_retrain

    return refresh_and_retrain(as_of=as_of.to_pydatetime(), config=world["config"], return_state=True, **kw)


def _registry(world) -> ModelRegistry:
    return ModelRegistry.from_settings(world["settings"])


def _config_with(world, name: str, **changes) -> str:
    data = yaml.safe_load(Path(world["config"]).read_text())
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    p = world["root"] / name
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_paths_in_order(world):
    reg = _registry(world)

    # 1. Bootstrap: no champion yet -> first version, champion alias.
    state = _run(world, week(5))
    assert state.is_completed(), state.message
    s = state.result()
    assert s["action"] == "promoted"
    assert s["drift"]["trigger"] == "bootstrap"
    v1 = reg.champion()
    assert v1 is not None and v1.version == "1"
    tags = v1.tags
    for key in (
        "trigger", "train_window", "test_window", "train_hash", "test_hash", "code_version",
        "parent_version", "decision_reasons", "gate.passed", "gate.beat_champion", "validation_status",
        "as_of", "test.average_precision", "contract_fingerprint",
    ):  # fmt: skip
        assert key in tags, key
    assert tags["trigger"] == "bootstrap" and tags["parent_version"] == ""
    names = {p for p, _ in reg.list_artifacts("1")}
    assert {"contract.yaml", "reference_profile.json", "test_manifest.json", "validation.json"} <= names
    # The headline metric is weighted to estimate production; the long tail is its own slice.
    assert s["candidate_metrics"]["positive_rate"] == pytest.approx(
        s["test_manifest"]["weighted_positive_rate"], abs=1e-9
    )

    # 1b. The same week again, on Wednesday afternoon and started by a drift alert: same test
    #     sample, same key -> the bootstrap version is found, nothing new is registered.
    state = _run(world, week(5) + pd.Timedelta(days=2, hours=14), trigger="drift")
    assert state.is_completed(), state.message
    s = state.result()
    assert s["action"] == "already registered" and s["registration"]["version"] == "1", s.get("registration")
    assert s["datasets"]["test_hash"] == tags["test_hash"]
    assert [v.version for v in reg.list_versions()] == ["1"]

    # 2. A quiet week (concept drift has not reached the test week): no retrain, no version.
    state = _run(world, week(6))
    assert state.is_completed(), state.message
    assert state.result()["action"] == "no retrain"
    assert [v.version for v in reg.list_versions()] == ["1"]

    # 3. Concept drift has eroded the champion: the policy retrains, the candidate wins.
    state = _run(world, week(10))
    assert state.is_completed(), state.message
    s = state.result()
    assert s["drift"]["action"] == "retrain" and s["drift"]["trigger"] == "performance", s["drift"]
    # By default a passing candidate is left as challenger for the rollout (auto_promote: false)
    assert s["action"] == "registered" and s["gates"]["passed"], s.get("gates")
    assert reg.get("2").aliases == ("challenger",) and reg.champion().version == "1"
    from tasks.weekly import announce_challenger

    assert announce_challenger("churn-test", s) == {"model": "churn-test", "version": "2", "previous_champion": "1"}
    # ... and with auto_promote the same week's rerun promotes it (the version is found, not retrained)
    state = _run(world, week(10), auto_promote=True)
    s = state.result()
    assert s["registration"]["created"] is False and s["registration"]["promoted"] is True, s["registration"]
    assert announce_challenger("churn-test", s) is None
    v2 = reg.champion()
    assert v2.version == "2"
    assert v2.tags["trigger"] == "performance" and v2.tags["parent_version"] == "1"
    assert s["candidate_metrics"]["average_precision"] > s["champion_metrics"]["average_precision"]
    moves = reg.history("champion")
    assert [(m.from_version, m.to_version) for m in moves][-2:] == [(None, "1"), ("1", "2")]

    # 4. Idempotent: the same run again registers nothing new. Gates are made lenient so the
    #    candidate passes and the alias steps are exercised deterministically.
    #    (The edge-case gates are off here: they rightly fail this worse candidate on a slice.)
    forced = _config_with(world, "forced.yaml", gates={"margin": -1.0}, edge_cases={"enabled": False})
    from flows.refresh_and_retrain import refresh_and_retrain

    def rerun(**kw):
        return refresh_and_retrain(
            as_of=week(9).to_pydatetime(), config=forced, force_retrain=True, return_state=True, **kw
        )

    a, b = rerun(auto_promote=False), rerun(auto_promote=False)
    assert a.is_completed() and b.is_completed(), (a.message, b.message)
    ra, rb = a.result()["registration"], b.result()["registration"]
    assert ra["created"] is True and rb["created"] is False and ra["version"] == rb["version"] == "3"
    assert reg.get("3").aliases == ("challenger",) and reg.champion().version == "2"
    # As if the first run had crashed before promoting: a rerun with promotion on finishes the move.
    c = rerun(auto_promote=True)
    assert c.is_completed(), c.message
    assert c.result()["registration"] == {**ra, "created": False, "promoted": True}
    assert reg.champion().version == "3" and len(reg.list_versions()) == 3
    assert [(m.from_version, m.to_version) for m in reg.history("champion")][-1] == ("2", "3")
    # Superseded: once another version is champion, rerunning the old run moves nothing back.
    reg.rollback(to_version="2", reason="test", actor="test")
    d = rerun(auto_promote=True)
    assert d.result()["registration"]["promoted"] is False and reg.champion().version == "2"

    # 5. Gate failure: an impossible margin -> registered without aliases, champion untouched.
    strict = _config_with(world, "strict.yaml", gates={"margin": 1.0})
    before = len(reg.list_versions())
    state = refresh_and_retrain(as_of=week(11).to_pydatetime(), config=strict, force_retrain=True, return_state=True)
    assert state.is_completed(), state.message
    s = state.result()
    assert s["action"] == "registered" and s["gates"]["passed"] is False
    new = reg.get(s["registration"]["version"])
    assert new.aliases == () and new.gate_status == "failed"
    assert len(reg.list_versions()) == before + 1
    assert reg.champion().version == "2"  # untouched


def test_validation_failure_stops_before_training(world):
    reg = _registry(world)
    before = len(reg.list_versions())
    contract = yaml.safe_load(Path(world["settings"].contract).read_text())
    contract["features"]["device"].update({"vocabulary": ["ios", "android"], "closed": True})
    narrow = world["root"] / "narrow-contract.yaml"
    narrow.write_text(yaml.safe_dump(contract))
    cfg = _config_with(world, "narrow.yaml", contract=str(narrow))
    from flows.refresh_and_retrain import refresh_and_retrain

    state = refresh_and_retrain(as_of=week(8).to_pydatetime(), config=cfg, force_retrain=True, return_state=True)
    assert state.is_failed()
    assert "data check blocked the run" in state.message and "device" in state.message
    assert len(reg.list_versions()) == before
