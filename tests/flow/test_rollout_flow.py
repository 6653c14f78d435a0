"""The rollout flow on a real Prefect API (prefect_test_harness), real MLflow and store on SQLite:
with no traffic it starts the challenger and holds (never passes), leaving one artifact and one
event per decision; it refuses what it must not do; the deployment's trigger renders its params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.registry import ModelRegistry
from tests.unit.test_serve_app import churn_frames, register_version, settings_for, write_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Versions 1 (champion) and 2 registered by driftline; no rollout yet."""
    root = tmp_path_factory.mktemp("rollout-flow")
    _traffic, labelled, contract = churn_frames()
    path = write_settings(root, contract)
    reg = ModelRegistry.from_settings(settings_for(path))
    v1 = register_version(reg, labelled, contract, "logistic_regression", "flow-v1")
    v2 = register_version(reg, labelled, contract, "logistic_regression", "flow-v2", seed=3)
    reg.promote(v1, reason="bootstrap", actor="t")
    return {"config": str(path), "reg": reg, "v1": v1, "v2": v2, "model": "churn-serve"}


@pytest.fixture
def events(monkeypatch) -> list[dict[str, Any]]:
    """The events the rollout tasks emit (still sent to the test server)."""
    import tasks.rollout as tr

    sent: list[dict[str, Any]] = []
    real = tr.emit_event

    def record(**kw: Any) -> Any:
        sent.append(kw)
        return real(**kw)

    monkeypatch.setattr(tr, "emit_event", record)
    return sent


def _artifacts(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )


def test_without_traffic_the_rollout_starts_and_holds(world, events):
    from flows.rollout import rollout

    state = rollout(version=world["v2"], interval_seconds=0, max_decisions=2, config=world["config"], return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["started"] is True and summary["active"] is True
    assert (summary["phase"], summary["share"]) == ("shadow", 0.0)
    assert summary["rollout"]["challenger"] == world["v2"] and summary["rollout"]["champion"] == world["v1"]
    assert [d["action"] for d in summary["decisions"]] == ["hold", "hold"]
    assert [d["reasons"] for d in summary["decisions"]] == [["insufficient_shadow"]] * 2
    assert summary["decisions"][0]["requests"] == {"champion": 0, "shadow": 0}
    assert summary["last_action"] == "hold"
    assert "shadow at 0% after 2 decision(s)" in state.message
    assert world["reg"].alias_version("challenger") == world["v2"]
    assert world["reg"].alias_version("champion") == world["v1"]

    arts = _artifacts(state)
    decisions = [a for a in arts if a.key == "rollout-decision"]
    assert len(decisions) == 2 and all(a.type == "markdown" for a in decisions)
    for a in decisions:
        assert f"version {world['v2']} vs champion {world['v1']}" in a.data
        assert "**Decision: hold** at shadow" in a.data
        assert "| requests | 0 | 0 |" in a.data and "| insufficient_shadow | hold |" in a.data
        assert a.description == "hold: insufficient_shadow"
    [table] = [a for a in arts if a.key == "rollout-run"]
    assert table.type == "table"

    assert [e["event"] for e in events] == ["driftline.rollout.hold"] * 2
    e = events[0]
    assert e["resource"]["prefect.resource.id"] == f"driftline.model.{world['model']}"
    assert e["resource"]["driftline.challenger_version"] == world["v2"]
    assert e["payload"]["reasons"][0]["code"] == "insufficient_shadow"
    assert e["payload"]["evidence"]["requests"] == {"champion": 0, "shadow": 0}
    assert e["payload"]["evidence"]["p99_ms"] == {"champion": None, "shadow": None}  # NaN is not JSON

    # A second event for the same version continues the rollout (no second start) ...
    again = rollout(version=world["v2"], interval_seconds=0, max_decisions=1, config=world["config"])
    assert again["started"] is False and again["rollout"]["rollout_id"] == summary["rollout"]["rollout_id"]
    assert [d["action"] for d in again["decisions"]] == ["hold"]
    # ... another version waits for it, another model's event moves nothing.
    other = rollout(version=world["v1"], max_decisions=1, config=world["config"], return_state=True)
    assert other.is_failed() and f"version {world['v1']} waits until it ends" in other.message
    foreign = rollout(version="7", model="someone-else", config=world["config"], return_state=True)
    assert foreign.is_completed() and "nothing to do" in foreign.message

    # Aborted from the CLI's side: the next run finds nothing active and takes no decision.
    from driftline.rollout import RolloutRunner

    RolloutRunner(world["reg"], None, None, settings_for(Path(world["config"]))).abort(actor="t", reason="done")
    idle = rollout(interval_seconds=0, config=world["config"])
    assert idle["active"] is False and idle["decisions"] == [] and idle["phase"] == "aborted"


def test_a_refused_start_fails_the_run_in_one_line(world):
    from flows.rollout import rollout

    state = rollout(version="99", interval_seconds=0, max_decisions=1, config=world["config"], return_state=True)
    assert state.is_failed()
    assert state.message == "model 'churn-serve' has no version 99"


def test_the_deployment_trigger_matches_the_model_and_renders_the_version():
    """prefect.yaml's rollout trigger, templated and rendered by Prefect's own code."""
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.events import Event
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate
    from prefect.utilities.templating import apply_values

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [dep] = [d for d in spec["deployments"] if d["name"] == "rollout"]
    assert dep["entrypoint"] == "flows/rollout.py:rollout"
    [trig] = dep["triggers"]
    params = trig.pop("parameters")
    templated = apply_values(trig, {"driftline-model": {"stdout": "churn"}}, warn_on_notset=False)
    [built] = _initialize_deployment_triggers("rollout", [{**templated, "parameters": params}])
    assert built.expect == {"driftline.challenger.registered"}
    assert built.match.model_dump() == {"prefect.resource.id": "driftline.model.churn"}

    def render(payload: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
        resource = {"prefect.resource.id": "driftline.model.churn", "prefect.resource.name": "churn", **(labels or {})}
        event = Event(event="driftline.challenger.registered", resource=resource, payload=payload)
        ctx = HydrationContext(render_jinja=True, raise_on_error=True, jinja_context={"event": event})
        return hydrate(built.parameters, ctx)

    assert render({"version": "5"}) == {"version": "5", "model": "churn"}
    assert render({"version": 6}) == {"version": "6", "model": "churn"}
    assert render({}, {"driftline.challenger_version": "7"}) == {"version": "7", "model": "churn"}
