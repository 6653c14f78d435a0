"""Deployment smoke test: a real Prefect server and process worker run driftline's prefect.yaml.

Starts ``prefect server`` on a free loopback port (SQLite under tmp_path), creates the
``driftline`` process work pool, runs ``prefect deploy --all`` from the repo root, starts a
worker, runs ``weekly-refresh-retrain`` on a small simulated store, emits
``driftline.drift.alert`` and checks that ``retrain-on-drift`` starts with the alert's
parameters, completes and registers a version tagged ``trigger=drift``; then rolls back
through the ``rollback`` deployment. A second model's ``retrain-on-drift`` is deployed next to
the first (from a copy of prefect.yaml with another deployment name and settings, on a work
queue no worker polls): each model's alert starts its own model's retrain and never the other's.
Everything started is stopped, also on failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.system.support import (
    BIN,
    REPO,
    child_env,
    free_port,
    http_ok,
    log_tail,
    require_binary,
    run_cli,
    service,
    wait_for,
)

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(540)]

MODEL = "churn-system"
OTHER = "churn-other"  # a second model deployed on the same server; its runs are never executed
OTHER_DEPLOYMENT = "retrain-on-drift-other"
OTHER_QUEUE = "other-model"
OTHER_ALERTED = ["plan"]
START = pd.Timestamp("2026-01-05")
WEEKLY_AS_OF = START + pd.Timedelta(weeks=7, hours=3)  # Monday 03:00 of week 7
# The next week's monitor run: a drift alert within the weekly run's own week would (rightly) find
# that week's version already registered, whichever trigger started it.
ALERT_AS_OF = START + pd.Timedelta(weeks=8, hours=2)
ALERTED = ["sessions_per_week", "country"]
RUN_TIMEOUT = 240  # one flow run on this small store takes well under a minute


@pytest.fixture
def world(tmp_path) -> dict[str, Any]:
    """A driftline.yaml under tmp_path whose store holds 8 weeks of 600 simulated users."""
    from driftline.settings import load_settings
    from driftline.simulate import simulate
    from driftline.store import Store

    sim = simulate(weeks=8, users=600, scenarios="stable", seed=5, start=START.date())
    contract = sim.contract.save(tmp_path / "contract.yaml")
    config = tmp_path / "driftline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "contract": str(contract),
                "model_name": MODEL,
                "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 0},
                "sampling": {"test_size": 300},
                "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100, "training_sample_rows": 500},
                # Promote at once: this test follows the alert -> retrain -> rollback path; the
                # rollout path (a challenger left for the rollout deployment) is tested on its own.
                "gates": {"auto_promote": True},
            }
        )
    )
    settings = load_settings(config)
    settings.ensure_home()
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    return {"config": config, "settings": settings}


def _other_model(tmp_path: Path, world: dict[str, Any]) -> tuple[Path, Path]:
    """Settings of a second model and a prefect.yaml holding only its retrain-on-drift, renamed.

    Its deployment goes to a work queue the test's worker does not poll, so a run it gets is
    seen (scheduled) but never executed.
    """
    config = tmp_path / "other.yaml"
    config.write_text(
        yaml.safe_dump(
            {"home": str(tmp_path / "other-home"), "contract": str(world["settings"].contract), "model_name": OTHER}
        )
    )
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (retrain,) = [d for d in spec["deployments"] if d["name"] == "retrain-on-drift"]
    retrain["name"] = OTHER_DEPLOYMENT
    retrain["work_pool"] = {**retrain["work_pool"], "work_queue_name": OTHER_QUEUE}
    spec["deployments"] = [retrain]
    spec.pop("definitions", None)  # its YAML anchor is already resolved into work_pool
    prefect_file = tmp_path / "prefect-other.yaml"
    prefect_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return config, prefect_file


def _alert(model: str, champion_version: str | None, features: list[str]) -> tuple[dict, dict]:
    """The resource and payload of a driftline.drift.alert, as the drift monitor emits them."""
    payload = {
        "model": model,
        "champion_version": champion_version,
        "level": "alert",
        "window_start": (ALERT_AS_OF - pd.Timedelta(days=1)).isoformat(),
        "window_end": ALERT_AS_OF.isoformat(),
        "as_of": ALERT_AS_OF.isoformat(),
        "n_rows": 700,
        "features": features,
        "details": {f: {"psi": 0.31, "warn": 0.1, "alert": 0.25, "severity": "alert"} for f in features},
    }
    return {"prefect.resource.id": f"driftline.model.{model}", "prefect.resource.name": model}, payload


def _prefect(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    done = run_cli([str(BIN / "prefect"), *args], env=env, cwd=REPO, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wait_final(client: Any, run_id: Any, logs: list[Path], worker: Any, *, completed: bool = True) -> Any:
    """The flow run once it reached a final state (bounded; fails at once if the worker died)."""

    def final() -> Any:
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    run = wait_for(final, timeout=RUN_TIMEOUT, what=f"flow run {run_id} to finish", proc=worker, log=logs[0])
    if completed and not run.state.is_completed():
        tails = "\n".join(f"--- {p.name}\n{log_tail(p, 60)}" for p in logs)
        pytest.fail(f"flow run {run.name} ended {run.state.type.value}: {run.state.message}\n{tails}")
    return run


def _runs_of(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def test_deploy_run_weekly_then_drift_alert_retrains(world, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftline.registry import ModelRegistry

    require_binary("prefect")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = child_env(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_WORKER_HEARTBEAT_SECONDS="10",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    server_log, worker_log = tmp_path / "prefect-server.log", tmp_path / "prefect-worker.log"
    yaml_before = (REPO / "prefect.yaml").read_text()
    registry = ModelRegistry.from_settings(world["settings"])

    # No scheduler: the cron schedules must not start runs of their own during the test.
    server_cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server_cmd += ["--no-ui", "--no-scheduler", "--analytics-off"]
    with service(server_cmd, log=server_log, env=env, cwd=tmp_path) as server:
        wait_for(
            lambda: http_ok(f"{api}/health"),
            timeout=150,
            what="prefect server /api/health",
            proc=server,
            log=server_log,
        )

        _prefect(["work-pool", "create", "driftline", "--type", "process"], env)
        deployed = _prefect(["--no-prompt", "deploy", "--all"], {**env, "DRIFTLINE_CONFIG": str(world["config"])}, 300)
        assert (REPO / "prefect.yaml").read_text() == yaml_before, "prefect deploy rewrote prefect.yaml"
        other_config, other_file = _other_model(tmp_path, world)
        other_env = {**env, "DRIFTLINE_CONFIG": str(other_config)}
        _prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(other_file)], other_env, 300)

        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deps = {
                name: client.read_deployment_by_name(name)
                for name in (
                    "refresh-and-retrain/weekly-refresh-retrain",
                    "drift-monitor/daily-drift-monitor",
                    "refresh-and-retrain/retrain-on-drift",
                    "rollback/rollback",
                    "rollout/rollout",
                )
            }
            weekly = deps["refresh-and-retrain/weekly-refresh-retrain"]
            assert [(s.schedule.cron, s.schedule.timezone) for s in weekly.schedules] == [("0 3 * * 1", "UTC")], (
                deployed
            )
            monitor = deps["drift-monitor/daily-drift-monitor"]
            assert [s.schedule.cron for s in monitor.schedules] == ["0 2 * * *"]
            for dep in deps.values():
                assert dep.work_pool_name == "driftline"
                assert dep.job_variables["env"]["DRIFTLINE_CONFIG"] == str(world["config"])
                assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
            on_drift = deps["refresh-and-retrain/retrain-on-drift"]
            assert on_drift.parameters == {"trigger": "drift"}
            # One drift automation per model: each matches its own model's resource, runs its own deployment.
            other = client.read_deployment_by_name(f"refresh-and-retrain/{OTHER_DEPLOYMENT}")
            assert other.job_variables["env"]["DRIFTLINE_CONFIG"] == str(other_config)
            automations = client.read_automations_by_name("driftline-retrain-on-drift-alert")
            routes = {
                a.trigger.match.model_dump().get("prefect.resource.id"): [str(x.deployment_id) for x in a.actions]
                for a in automations
                if a.enabled
            }
            assert routes == {
                f"driftline.model.{MODEL}": [str(on_drift.id)],
                f"driftline.model.{OTHER}": [str(other.id)],
            }, routes
            on_challenger = client.read_automations_by_name("driftline-rollout-on-challenger")
            assert len(on_challenger) == 1 and on_challenger[0].enabled

            worker_cmd = [str(BIN / "prefect"), "worker", "start", "--pool", "driftline", "--type", "process"]
            worker_cmd += ["--work-queue", "default", "--name", "system-test-worker", "--install-policy", "never"]
            with service(worker_cmd, log=worker_log, env=env, cwd=tmp_path) as worker:
                logs = [worker_log, server_log]
                # 1. The weekly deployment on the simulated store: bootstrap -> version 1, champion.
                run = client.create_flow_run_from_deployment(weekly.id, parameters={"as_of": WEEKLY_AS_OF.isoformat()})
                run = _wait_final(client, run.id, logs, worker)
                assert worker.poll() is None, log_tail(worker_log)
                v1 = registry.champion()
                assert v1 is not None and v1.trigger == "bootstrap", registry.list_versions()

                # 2. Drift alerts, as the drift monitor emits them: the other model's first, then this one's.
                # Each starts exactly its own model's retrain (the other's run waits on a queue no
                # worker polls); the counts are checked again after this model's retrain has finished.
                for model, version, features in ((OTHER, None, OTHER_ALERTED), (MODEL, v1.version, ALERTED)):
                    resource, payload = _alert(model, version, features)
                    emit = ["event", "emit", "driftline.drift.alert", "--resource", json.dumps(resource)]
                    _prefect([*emit, "--payload", json.dumps(payload)], env)
                runs = wait_for(
                    lambda: _runs_of(client, on_drift.id),
                    timeout=120,
                    what="the drift alert to start a retrain-on-drift run",
                    log=server_log,
                )
                assert len(runs) == 1
                params = runs[0].parameters
                assert params["trigger"] == "drift"
                assert params["alerted_features"] == ALERTED
                assert pd.Timestamp(params["as_of"]) == ALERT_AS_OF
                other_runs = wait_for(
                    lambda: _runs_of(client, other.id),
                    timeout=120,
                    what="the other model's alert to start its own retrain-on-drift run",
                    log=server_log,
                )
                assert [r.parameters["alerted_features"] for r in other_runs] == [OTHER_ALERTED]
                _wait_final(client, runs[0].id, logs, worker)
                # Both alerts were processed long ago: neither started the other model's retrain.
                assert [r.parameters["alerted_features"] for r in _runs_of(client, on_drift.id)] == [ALERTED]
                assert [r.parameters["alerted_features"] for r in _runs_of(client, other.id)] == [OTHER_ALERTED]
                assert all(not r.state.is_running() and not r.state.is_final() for r in _runs_of(client, other.id))
                by_trigger = {v.trigger: v for v in registry.list_versions()}
                assert set(by_trigger) == {"bootstrap", "drift"}, registry.list_versions()
                v2 = by_trigger["drift"]
                assert int(v2.version) > int(v1.version)

                # 3. The manual rollback deployment moves champion back to version 1.
                before = registry.alias_version("champion")
                run = client.create_flow_run_from_deployment(
                    deps["rollback/rollback"].id,
                    parameters={"to_version": int(v1.version), "reason": "system test rollback"},
                )
                _wait_final(client, run.id, logs, worker)
                assert registry.alias_version("champion") == v1.version
                if before != v1.version:  # v2 passed its gates and was promoted
                    last = registry.history()[-1]
                    assert (last.kind, last.from_version, last.to_version) == ("rollback", before, v1.version)
                    assert last.reason == "system test rollback" and last.actor == f"flow-run:{run.id}"

                # 4. At the bottom of the lineage the rollback deployment fails with one line, in its own terms.
                run = client.create_flow_run_from_deployment(
                    deps["rollback/rollback"].id, parameters={"previous": True, "reason": "once more"}
                )
                run = _wait_final(client, run.id, logs, worker, completed=False)
                assert run.state.is_failed(), run.state
                assert "bottom of the lineage" in run.state.message and "to_version=N" in run.state.message
                assert "--to" not in run.state.message
                assert registry.alias_version("champion") == v1.version
                assert "Traceback" not in worker_log.read_text(), log_tail(worker_log)
                assert worker.poll() is None, log_tail(worker_log)
        assert server.poll() is None, log_tail(server_log)
