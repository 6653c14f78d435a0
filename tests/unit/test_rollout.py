"""Progressive rollout: routing, the decision rules, and the whole path through a real gateway.

The end-to-end tests run the gateway in-process (FastAPI's TestClient, real MLflow on SQLite,
real store), send simulated traffic to it, feed the labels back through outcomes ingest and take
decisions with :class:`driftline.rollout.RolloutRunner` — what the rollout flow's task runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from driftline import rollout as ro
from driftline.ingest import ingest_files
from driftline.registry import ModelRegistry
from driftline.registry.rollouts import Rollout
from driftline.serve.app import create_app
from driftline.settings import RolloutSettings
from driftline.simulate import simulate
from driftline.store import Store
from tests.unit.test_serve_app import churn_frames, records_of, register_version, settings_for, write_settings

STEPS = [10.0, 50.0, 100.0]
FAST = RolloutSettings(
    steps=STEPS, min_shadow_requests=60, min_requests=25, min_labelled=25, min_positives=3, interval_seconds=1
)


# -- routing -----------------------------------------------------------------------------------
def test_bucket_is_sha256_of_model_and_entity():
    want = int.from_bytes(hashlib.sha256(b"m\x00u42").digest()[:8], "big") / 2**64 * 100
    assert ro.bucket("m", "u42") == want
    assert not ro.serves_challenger("m", "u42", 0) and ro.serves_challenger("m", "u42", 100)


@given(st.text(max_size=20), st.floats(0, 100), st.floats(0, 100))
def test_a_growing_share_never_takes_an_entity_back(entity, a, b):
    lo, hi = sorted((a, b))
    assert 0 <= ro.bucket("m", entity) < 100
    assert not ro.serves_challenger("m", entity, lo) or ro.serves_challenger("m", entity, hi)


def test_shares_split_entities_in_proportion():
    got = np.mean([ro.serves_challenger("m", f"u{i}", 10) for i in range(20_000)])
    assert abs(got - 0.10) < 0.01  # binomial sd 0.002


# -- the decision rules --------------------------------------------------------------------------
def _rollout(phase: str = "shadow", step: int = -1, share: float = 0.0, paused: bool = False) -> Rollout:
    return Rollout("m", 1, "2", "1", phase, step, share, paused, 0, 0, 0, 1)


def _decide(r: Rollout, **ev: Any) -> tuple[str, list[str]]:
    action, why = ro.decide(r, ro.Evidence(phase=r.phase, **ev), FAST, metric="average_precision")
    return action, [w.code for w in why]


def test_shadow_rules():
    shadow = _rollout()
    base = {"requests": {"champion": 100, "shadow": 100}, "errors": {"shadow": 0}, "agreement": 0.9}
    assert _decide(shadow, **dict(base, requests={"champion": 10, "shadow": 10})) == ("hold", ["insufficient_shadow"])
    assert _decide(shadow, **dict(base, errors={"shadow": 6})) == ("revert", ["challenger_errors"])
    assert _decide(shadow, **dict(base, agreement=0.3)) == ("revert", ["extreme_disagreement"])
    assert _decide(shadow, **dict(base, p99_ms={"champion": 3.0, "shadow": 20.0})) == ("revert", ["challenger_slow"])
    assert _decide(shadow, **base) == ("advance", ["shadow_passed"])
    worse = dict(
        base, paired_diff=[-0.2, -0.3, -0.1], champion_metric=0.5, labelled={"paired": 80}, positives={"paired": 9}
    )
    assert _decide(shadow, **worse) == ("revert", ["worse_on_same_rows"])
    unsure = dict(worse, paired_diff=[-0.2, -0.3, 0.05])  # interval reaches 0: not condemned yet, wait
    assert _decide(shadow, **unsure) == ("hold", ["metric_drop_unconfirmed"])
    tie = dict(worse, paired_diff=[-0.01, -0.03, 0.01])
    assert _decide(shadow, **tie) == ("advance", ["quality_ok", "shadow_passed"])
    assert _decide(_rollout(paused=True), **base) == ("hold", ["paused"])


def test_canary_rules():
    r = _rollout("canary", 0, 10.0)
    ok = {
        "requests": {"champion": 300, "challenger": 40},
        "labelled": {"champion": 200, "challenger": 30},
        "positives": {"champion": 30, "challenger": 5},
        "metric": {"champion": 0.50, "challenger": 0.50},
        "interval": {"champion": [0.46, 0.54], "challenger": [0.40, 0.45]},
    }
    assert _decide(r, **dict(ok, requests={"champion": 300, "challenger": 10})) == ("hold", ["insufficient_traffic"])
    assert _decide(r, **dict(ok, labelled={"champion": 200, "challenger": 10})) == ("hold", ["insufficient_labels"])
    assert _decide(r, **dict(ok, positives={"champion": 30, "challenger": 1})) == ("hold", ["insufficient_labels"])
    assert _decide(r, **ok) == ("advance", ["quality_ok", "step_passed"])
    # relative drops: 0.50 -> 0.48 is 4 % (investigate), 0.50 -> 0.44 is 12 % (revert)
    assert _decide(r, **dict(ok, metric={"champion": 0.50, "challenger": 0.48})) == (
        "investigate",
        ["metric_drop_investigate"],
    )
    assert _decide(r, **dict(ok, metric={"champion": 0.50, "challenger": 0.44})) == ("revert", ["metric_drop"])
    noise = {"champion": [0.40, 0.60], "challenger": [0.35, 0.55]}  # 12 % down, intervals overlap: wait
    assert _decide(r, **dict(ok, metric={"champion": 0.50, "challenger": 0.44}, interval=noise)) == (
        "hold",
        ["metric_drop_unconfirmed"],
    )
    small = {"champion": [0.40, 0.60], "challenger": [0.38, 0.58]}  # 4 % down within the noise: passes
    assert _decide(r, **dict(ok, metric={"champion": 0.50, "challenger": 0.48}, interval=small))[0] == "advance"
    last = _rollout("canary", len(STEPS) - 1, 100.0)
    assert _decide(last, **ok) == ("promote", ["quality_ok", "canary_complete"])


def test_a_canary_step_with_mirror_scores_is_judged_on_the_same_rows():
    r = _rollout("canary", 0, 10.0)
    two_groups = {  # the challenger's users churn less: unpaired AP says -20 %, apart
        "requests": {"champion": 300, "challenger": 40},
        "labelled": {"champion": 200, "challenger": 30, "paired": 30},
        "positives": {"champion": 30, "challenger": 5, "paired": 5},
        "metric": {"champion": 0.5, "challenger": 0.4},
        "interval": {"champion": [0.45, 0.55], "challenger": [0.35, 0.44]},
    }
    same_rows = dict(two_groups, paired=40, paired_diff=[0.01, -0.02, 0.04], champion_metric=0.4)
    assert _decide(r, **same_rows) == ("advance", ["quality_ok", "step_passed"])
    worse = dict(same_rows, paired_diff=[-0.1, -0.15, -0.05])
    assert _decide(r, **worse) == ("revert", ["worse_on_same_rows"])
    few = dict(worse, labelled={**two_groups["labelled"], "paired": 10})  # too few mirror labels: two groups decide
    assert _decide(r, **few) == ("revert", ["metric_drop"])


def test_a_drop_reason_carries_its_numbers():
    r = _rollout("canary", 0, 10.0)
    ev = ro.Evidence(
        phase="canary",
        requests={"champion": 300, "challenger": 40},
        labelled={"champion": 200, "challenger": 30},
        positives={"champion": 30, "challenger": 5},
        metric={"champion": 0.5, "challenger": 0.4},
        interval={"champion": [0.45, 0.55], "challenger": [0.35, 0.44]},
    )
    _, (why,) = ro.decide(r, ev, FAST, metric="average_precision")
    assert (why.code, why.level, why.metric, why.threshold) == ("metric_drop", "revert", "average_precision", 0.10)
    assert why.value == pytest.approx(0.2)


# -- end to end through the gateway ------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Champion v1; v2 as good (another seed); v3 trained on shuffled labels."""
    root = tmp_path_factory.mktemp("rollout")
    traffic, labelled, contract = churn_frames()
    path = write_settings(root, contract)
    s = settings_for(path).model_copy(update={"rollout": FAST})
    reg = ModelRegistry.from_settings(s)
    v1 = register_version(reg, labelled, contract, "hist_gradient_boosting", "ro-v1")
    v2 = register_version(reg, labelled, contract, "hist_gradient_boosting", "ro-v2", seed=5)
    shuffled = labelled.copy()
    shuffled[contract.target.name] = np.random.default_rng(0).permutation(shuffled[contract.target.name].to_numpy())
    v3 = register_version(reg, shuffled, contract, "hist_gradient_boosting", "ro-v3")
    later = simulate(weeks=2, users=450, seed=2)  # traffic neither model was trained on
    fresh = later.traffic.merge(later.outcomes[[contract.request_id, contract.target.name]], on=contract.request_id)
    return {"root": root, "settings": s, "contract": contract, "traffic": traffic, "labelled": fresh, "reg": reg,
            "v1": v1, "v2": v2, "v3": v3}  # fmt: skip


@pytest.fixture
def fresh(world):
    """Champion v1, no active rollout, challenger unset."""
    reg = world["reg"]
    runner = ro.RolloutRunner(
        reg, Store.from_settings(world["settings"], world["contract"]), world["contract"], world["settings"]
    )
    r = runner.status()
    if r is not None and r.active:
        runner.abort(actor="test", reason="reset")
    if reg.alias_version("champion") != world["v1"]:
        reg.promote(world["v1"], reason="reset", actor="t", force=True)
    if reg.alias_version("challenger") is not None:
        reg.clear_alias("challenger", reason="reset", actor="t")
    return world, runner


_counter = iter(range(10**9))


def _send(client: TestClient, w: dict[str, Any], n: int) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """``n`` requests of simulated traffic (fresh request ids), one record each; answers and the frame sent."""
    c = w["contract"]
    k = next(_counter)
    frame = w["labelled"].sample(n, random_state=k, replace=True).reset_index(drop=True)
    frame[c.request_id] = [f"ro{k}-{i}" for i in range(n)]
    out = []
    for rec in records_of(frame, c):
        r = client.post("/predict", json=rec)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out, frame


def _label(w: dict[str, Any], frame: pd.DataFrame, tmp_path) -> None:
    """Feed the outcomes of ``frame`` back through outcomes ingest."""
    c = w["contract"]
    out = frame[[c.request_id, c.entity_id, c.target.name]].copy()
    out["observed_time"] = pd.Timestamp("2026-03-01")
    path = tmp_path / f"outcomes-{next(_counter)}.csv"
    out.to_csv(path, index=False)
    store = Store.from_settings(w["settings"], c)
    try:
        ingest_files([path], c, store, kind="outcomes")
    finally:
        store.dispose()


def _wait_for(client: TestClient, predicate, timeout: float = 10.0) -> None:
    gw = client.app.state.gateway
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gw._follow_once()
        if predicate(gw):
            return
        time.sleep(0.05)
    raise AssertionError("the gateway did not pick up the rollout state")


def _drain(client: TestClient) -> None:
    """Wait until the shadow scorer and the rollout log have written what they hold."""
    gw = client.app.state.gateway
    deadline = time.monotonic() + 20
    while (gw.shadow.depth or gw.rollout_log.depth) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a batch being written is no longer counted in depth until it is stored


def _app(w: dict[str, Any]) -> Any:
    return create_app(w["settings"], w["contract"], poll_seconds=0.2, admin_token=None, flush_seconds=0.05)


def test_a_good_challenger_goes_from_shadow_to_champion(fresh, tmp_path):
    w, runner = fresh
    runner.start(w["v2"], actor="test")
    actions = []
    with TestClient(_app(w)) as client:
        _wait_for(client, lambda gw: gw._live_challenger()[1] is not None)
        for _ in range(16):
            r = runner.status()
            if not r.active:
                break
            _, frame = _send(client, w, 120)
            _drain(client)
            _label(w, frame, tmp_path)
            d = runner.step(actor="test")
            actions.append((r.phase, r.share, d.action, [x.code for x in d.reasons]))
            _wait_for(client, lambda gw, d=d: gw.rollout.rev == d.rollout.rev)
    assert runner.status().phase == "promoted", actions
    assert w["reg"].alias_version("champion") == w["v2"]
    assert w["reg"].alias_version("challenger") is None
    assert [a for _, _, a, _ in actions][-1] == "promote"
    assert any(a[0] == "canary" and a[1] == 10.0 for a in actions)
    served = Store.from_settings(w["settings"], w["contract"]).read_rollout_scores(w["reg"].model_name)
    assert {"shadow", "champion", "challenger"} <= set(served["variant"])


def test_a_bad_challenger_is_reverted_before_it_serves_more_than_one_step(fresh, tmp_path):
    w, runner = fresh
    r0 = runner.start(w["v3"], actor="test")
    seen: list[tuple[str, float, str]] = []
    with TestClient(_app(w)) as client:
        _wait_for(client, lambda gw: gw._live_challenger()[1] is not None)
        for _ in range(12):
            r = runner.status()
            if not r.active:
                break
            answers, frame = _send(client, w, 80)
            assert max((a["variant"] == "challenger") for a in answers) <= (r.phase == "canary")
            _drain(client)
            _label(w, frame, tmp_path)
            d = runner.step(actor="test")
            seen.append((r.phase, r.share, d.action, [(x.code, x.text) for x in d.reasons]))
            _wait_for(client, lambda gw, d=d: gw.rollout.rev == d.rollout.rev)
        # once reverted the gateway serves nobody with it
        answers, _ = _send(client, w, 30)
    assert runner.status().phase == "reverted", seen
    assert max(x[1] for x in seen) <= STEPS[0]
    assert {a["variant"] for a in answers} == {"champion"}
    assert w["reg"].alias_version("champion") == w["v1"] and w["reg"].alias_version("challenger") is None
    last = [x for x in w["reg"].history("challenger") if x.kind == "clear"][-1]
    assert last.to_version is None and "rollout revert" in last.reason
    kept = runner.rollouts.decisions(w["reg"].model_name, r0.rollout_id)
    assert kept[-1].action == "revert" and kept[-1].reasons[0]["code"] in (
        "worse_on_same_rows", "metric_drop", "extreme_disagreement")  # fmt: skip


def test_low_traffic_holds_instead_of_passing(fresh):
    w, runner = fresh
    runner.start(w["v2"], actor="test")
    with TestClient(_app(w)) as client:
        _wait_for(client, lambda gw: gw._live_challenger()[1] is not None)
        _send(client, w, 10)
        _drain(client)
    for _ in range(3):
        d = runner.step(actor="test")
        assert d.action == "hold" and [x.code for x in d.reasons] == ["insufficient_shadow"]
    assert runner.status().phase == "shadow"


def test_a_shadow_that_throws_never_fails_a_request(fresh):
    w, runner = fresh
    runner.start(w["v2"], actor="test")

    def boom(rows):
        raise RuntimeError("challenger exploded")

    with TestClient(_app(w)) as client:
        gw = client.app.state.gateway
        _wait_for(client, lambda gw: gw._live_challenger()[1] is not None)
        gw.challenger.current = dataclasses.replace(gw.challenger.current, scorer=boom)
        answers, _ = _send(client, w, 70)  # every one answered 200 by the champion (asserted in _send)
        _drain(client)
    assert {a["variant"] for a in answers} == {"champion"}
    d = runner.step(actor="test")
    assert d.action == "revert" and d.reasons[0].code == "challenger_errors"


def test_a_manual_rollback_during_a_rollout_aborts_it(fresh):
    w, runner = fresh
    runner.start(w["v2"], actor="test")
    w["reg"].promote(w["v3"], reason="someone promotes by hand", actor="human", force=True)
    d = runner.step(actor="test")
    assert d.action == "abort" and d.reasons[0].code == "champion_moved"
    assert runner.status().phase == "aborted" and w["reg"].alias_version("challenger") is None


def test_start_is_refused_while_a_rollout_is_active_and_for_the_champion(fresh):
    w, runner = fresh
    from driftline.errors import RefusedError

    with pytest.raises(RefusedError) as e:
        runner.start(w["v1"], actor="test")
    assert "already the champion" in str(e.value)
    runner.start(w["v2"], actor="test")
    with pytest.raises(RefusedError) as e:
        runner.start(w["v3"], actor="test")
    assert e.value.code == "rollout_active"
    assert runner.pause().paused and runner.step(actor="t").reasons[0].code == "paused"
    assert not runner.pause(False).paused


def test_clearing_an_alias_goes_through_the_compare_and_set_path(fresh):
    w, _ = fresh
    from driftline.errors import RefusedError

    reg = w["reg"]
    reg.set_alias("challenger", w["v2"], reason="t", actor="t")
    with pytest.raises(RefusedError) as e:
        reg.clear_alias("challenger", reason="stale view", actor="t", expect_from=w["v3"])
    assert e.value.code == "moved" and reg.alias_version("challenger") == w["v2"]
    move = reg.clear_alias("challenger", reason="done with it", actor="t", expect_from=w["v2"])
    assert (move.kind, move.from_version, move.to_version, move.state) == ("clear", w["v2"], None, "done")
    assert reg.alias_version("challenger") is None
    assert "challenger" not in reg._backend.model_state().aliases  # gone in MLflow too
    assert reg.history("challenger")[-1] == move
    with pytest.raises(RefusedError):
        reg.clear_alias("champion", reason="no", actor="t")


def test_a_revert_whose_alias_clear_failed_is_finished_by_the_next_step(fresh):
    w, runner = fresh
    r = runner.start(w["v2"], actor="test")
    # as if the process stopped after the share went to 0 and before the alias was cleared
    runner.rollouts.update(r, phase="reverted", share=0.0, last_action="revert", reasons=[{"text": "breach"}])
    assert w["reg"].alias_version("challenger") == w["v2"]
    d = runner.step(actor="test")
    assert d.action == "hold" and d.reasons[0].code == "no_rollout"
    assert w["reg"].alias_version("challenger") is None
    assert "rollout revert: breach" in w["reg"].history("challenger")[-1].reason
