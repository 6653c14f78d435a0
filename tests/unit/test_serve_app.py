"""The gateway app through TestClient, against a real MLflow registry and store on SQLite."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from driftline import training
from driftline.registry import ModelRegistry, Verdict
from driftline.serve.app import create_app
from driftline.settings import TrainingSettings, load_settings
from driftline.simulate import simulate
from driftline.store import Store

TOKEN = "s3cret-admin-token"


# -- helpers shared with tests/system/test_serve.py ----------------------------------------
def churn_frames() -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Simulated traffic, the same rows with their labels, and the churn contract."""
    sim = simulate(weeks=3, users=450, seed=1)
    c = sim.contract
    labelled = sim.traffic.merge(sim.outcomes[[c.request_id, c.target.name]], on=c.request_id)
    return sim.traffic, labelled, c


def write_settings(root: Path, contract: Any) -> Path:
    """A settings file whose home, store and registry all live under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    contract.save(root / "contract.yaml")
    path = root / "driftline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "home": str(root / "home"),
                "contract": str(root / "contract.yaml"),
                "store_url": f"sqlite:///{root / 'store.db'}",
                "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "model_name": "churn-serve",
            }
        )
    )
    return path


def settings_for(path: Path) -> Any:
    """Settings from the file, whatever DRIFTLINE_* the test environment sets."""
    data = yaml.safe_load(path.read_text())
    return load_settings(path, **data)


def register_version(
    reg: ModelRegistry, labelled: pd.DataFrame, contract: Any, estimator: str, key: str, seed: int = 0
) -> str:
    """Train ``estimator`` on the labelled rows and register it as a driftline version."""
    model = training.train(labelled, contract, TrainingSettings(estimator=estimator, seed=seed))
    return reg.register_candidate(
        pipeline=model.pipeline,
        input_example=training.features_frame(labelled.head(3), contract),
        params=model.params,
        metrics={},
        tags={"trigger": "manual"},
        artifacts={"contract.yaml": contract.to_yaml()},
        verdict=Verdict(gates_passed=True),
        idempotency_key=key,
    ).version


def records_of(frame: pd.DataFrame, contract: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready request records (exact floats, ISO times, no target)."""
    cols = contract.row_columns
    out = []
    for row in frame[cols].itertuples(index=False):
        rec = {}
        for name, v in zip(cols, row, strict=True):
            if isinstance(v, pd.Timestamp):
                v = v.isoformat()
            elif isinstance(v, np.generic):
                v = v.item()
            rec[name] = v
        out.append(rec)
    return out


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Two registered versions (1: gradient boosting, 2: logistic regression); champion is 1."""
    root = tmp_path_factory.mktemp("serve")
    traffic, labelled, contract = churn_frames()
    path = write_settings(root, contract)
    s = settings_for(path)
    reg = ModelRegistry.from_settings(s)
    v1 = register_version(reg, labelled, contract, "hist_gradient_boosting", "serve-v1")
    v2 = register_version(reg, labelled, contract, "logistic_regression", "serve-v2")
    reg.promote(v1, reason="test", actor="t")
    return {"settings": s, "path": path, "contract": contract, "traffic": traffic, "reg": reg, "v1": v1, "v2": v2}


@pytest.fixture
def champion_v1(world):
    """Champion is version 1 when the test starts."""
    if world["reg"].alias_version("champion") != world["v1"]:
        world["reg"].promote(world["v1"], reason="reset", actor="t")
    return world


def _app(world, **kw: Any) -> Any:
    kw.setdefault("poll_seconds", 60.0)
    kw.setdefault("admin_token", TOKEN)
    return create_app(world["settings"], world["contract"], **kw)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- tests -----------------------------------------------------------------------------------
def test_scores_equal_offline_scoring_and_every_row_is_logged(champion_v1):
    w = champion_v1
    c = w["contract"]
    frame = w["traffic"].iloc[:1000].copy()
    frame[c.request_id] = [f"parity-{i}" for i in range(len(frame))]
    with TestClient(_app(w)) as client:
        r = client.post("/predict", json={"records": records_of(frame, c)})
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
    pipeline = w["reg"].load(version=w["v1"])
    expected = training.score(pipeline, frame, c)
    assert [p["request_id"] for p in got] == frame[c.request_id].tolist()
    np.testing.assert_allclose([p["score"] for p in got], expected, rtol=0, atol=1e-12)
    threshold = w["settings"].training.threshold
    assert [p["label"] for p in got] == [1 if s >= threshold else 0 for s in expected]
    assert {(p["model"], p["version"], p["variant"]) for p in got} == {("churn-serve", w["v1"], "champion")}
    # the app has shut down: the writer drained every row it accepted
    logged = Store.from_settings(w["settings"], c).read_predictions()
    logged = logged[logged[c.request_id].str.startswith("parity-")].set_index(c.request_id)
    assert len(logged) == 1000
    assert np.allclose(logged.loc[frame[c.request_id], "score"].to_numpy(), expected, atol=1e-12)
    assert set(logged["model_version"]) == {w["v1"]} and set(logged["variant"]) == {"champion"}
    assert (logged["latency_ms"] > 0).all()
    assert set(logged["predicted_label"]) <= {"0", "1"}


def test_one_record_gets_a_request_id_and_answers_one_object(champion_v1):
    w = champion_v1
    c = w["contract"]
    rec = records_of(w["traffic"].iloc[:1], c)[0]
    del rec[c.request_id], rec[c.timestamp]
    with TestClient(_app(w)) as client:
        r = client.post("/predict", json=rec)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["request_id"]) == 32 and int(body["request_id"], 16) >= 0
    assert set(body) == {"request_id", "score", "label", "model", "version", "variant"}
    assert 0.0 <= body["score"] <= 1.0 and body["version"] == w["v1"]


def test_health_ready_version_and_metrics(champion_v1):
    w = champion_v1
    with TestClient(_app(w)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["version"] == w["v1"]
        v = client.get("/version").json()
        assert v["model"] == "churn-serve" and v["version"] == w["v1"] and v["driftline"]
        client.post("/predict", json={"records": records_of(w["traffic"].iloc[:3], w["contract"])})
        client.post("/predict", json={"tenure_days": 1})
        text = client.get("/metrics").text
    assert 'driftline_serve_requests_total{status="200",variant="champion"} 1.0' in text
    assert 'driftline_serve_requests_total{status="422",variant="champion"} 1.0' in text
    assert 'driftline_serve_errors_total{reason="invalid"} 1.0' in text
    assert 'driftline_serve_request_latency_seconds_count{variant="champion"} 1.0' in text
    assert f'driftline_serve_model_info{{model="churn-serve",version="{w["v1"]}"}} 1.0' in text
    assert "driftline_serve_log_queue_depth" in text
    assert "driftline_serve_log_rows_dropped_total 0.0" in text


def test_not_ready_without_a_champion(tmp_path):
    traffic, _labelled, contract = churn_frames()
    s = settings_for(write_settings(tmp_path / "empty", contract))
    with TestClient(create_app(s, poll_seconds=60.0)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        r = client.post("/predict", json=records_of(traffic.iloc[:1], contract)[0])
        assert r.status_code == 503 and "no champion" in r.json()["detail"]
        assert client.get("/version").json()["version"] is None


def test_invalid_records_are_422_and_logged_nowhere(champion_v1):
    w = champion_v1
    c = w["contract"]
    recs = records_of(w["traffic"].iloc[:2], c)
    recs[0][c.request_id], recs[1][c.request_id] = "bad-0", "bad-1"
    recs[1]["tenure_days"] = -3
    recs[1]["plan"] = "platinum"
    with TestClient(_app(w)) as client:
        r = client.post("/predict", json={"records": recs})
        big = client.post("/predict", content=b" " * (1024 * 1024 + 1), headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert {(p["field"], p["rule"], p["record"]) for p in r.json()["detail"]} == {
        ("tenure_days", "range", 1),
        ("plan", "vocabulary", 1),
    }
    assert big.status_code == 413
    assert not Store.from_settings(w["settings"], c).existing_request_ids([recs[0][c.request_id]])


def test_a_full_log_queue_refuses_the_request_and_logs_none_of_it(champion_v1):
    w = champion_v1
    c = w["contract"]
    frame = w["traffic"].iloc[:10].copy()
    frame[c.request_id] = [f"full-{i}" for i in range(10)]
    with TestClient(_app(w, queue_capacity=5)) as client:
        r = client.post("/predict", json={"records": records_of(frame, c)})
        ok = client.post("/predict", json={"records": records_of(frame.iloc[:5], c)})
        metrics = client.get("/metrics").text
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert ok.status_code == 200
    stored = Store.from_settings(w["settings"], c).existing_request_ids(frame[c.request_id].tolist())
    assert stored == set(frame[c.request_id].iloc[:5])
    assert 'driftline_serve_errors_total{reason="backpressure"} 1.0' in metrics


def test_admin_reload_needs_the_token(champion_v1):
    w = champion_v1
    with TestClient(_app(w, admin_token=None)) as client:
        assert client.post("/admin/reload", headers=_auth()).status_code == 404
    with TestClient(_app(w)) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers=_auth("wrong")).status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": TOKEN}).status_code == 401
        r = client.post("/admin/reload", headers=_auth())
        assert r.status_code == 200 and r.json() == {
            "alias_version": w["v1"],
            "serving": w["v1"],
            "changed": False,
            "error": None,
        }


def test_admin_token_comes_from_the_environment(champion_v1, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_ADMIN_TOKEN", "from-env")
    with TestClient(create_app(champion_v1["settings"], champion_v1["contract"], poll_seconds=60.0)) as client:
        assert client.post("/admin/reload", headers=_auth()).status_code == 401
        assert client.post("/admin/reload", headers=_auth("from-env")).status_code == 200


def _version_of(client: TestClient, rec: dict[str, Any]) -> str:
    r = client.post("/predict", json=rec)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_alias_moves_reach_serving_by_reload_and_by_polling(champion_v1):
    w = champion_v1
    reg = w["reg"]
    rec = records_of(w["traffic"].iloc[:1], w["contract"])[0]
    rec.pop(w["contract"].request_id)
    with TestClient(_app(w, poll_seconds=0.5)) as client:
        assert _version_of(client, rec) == w["v1"]
        reg.promote(w["v2"], reason="test: forced reload", actor="t")
        r = client.post("/admin/reload", headers=_auth())
        assert r.status_code == 200 and r.json()["serving"] == w["v2"]
        assert _version_of(client, rec) == w["v2"]
        reg.promote(w["v1"], reason="test: polling", actor="t")
        moved = time.monotonic()
        while _version_of(client, rec) != w["v1"]:
            assert time.monotonic() - moved < 0.5 + 2.0, "the alias move did not reach serving in time"
            time.sleep(0.05)
        metrics = client.get("/metrics").text
    assert f'driftline_serve_model_info{{model="churn-serve",version="{w["v1"]}"}} 1.0' in metrics
    assert f'version="{w["v2"]}"' not in metrics.split("driftline_serve_model_info")[-1].split("# HELP")[0]


def test_a_foreign_champion_is_refused_and_the_old_version_keeps_serving(champion_v1):
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    w = champion_v1
    reg = w["reg"]
    rec = records_of(w["traffic"].iloc[:1], w["contract"])[0]
    rec.pop(w["contract"].request_id)
    with TestClient(_app(w)) as client:
        with reg._using_store() as fluent:  # plain MLflow, the way another tool would register
            with fluent.start_run():
                info = mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1]], [0, 1]), name="m")
            mv = fluent.register_model(info.model_uri, reg.model_name)
        MlflowClient(reg.tracking_uri).set_registered_model_alias(reg.model_name, "champion", mv.version)
        r = client.post("/admin/reload", headers=_auth())
        assert r.status_code == 409
        body = r.json()
        assert body["alias_version"] == str(mv.version) and body["serving"] == w["v1"]
        assert "not registered by driftline" in body["error"] and "\n" not in body["error"]
        assert _version_of(client, rec) == w["v1"]
        assert client.get("/readyz").status_code == 200
        assert "driftline_serve_reload_failures_total 1.0" in client.get("/metrics").text
    reg.promote(w["v1"], reason="test: back from the foreign version", actor="t")


def test_predict_bodies_are_json(champion_v1):
    with TestClient(_app(champion_v1)) as client:
        r = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "json"
    assert json.dumps(r.json())  # strict JSON


def test_a_reviewed_alias_is_scored_like_its_code_and_logged_as_received(champion_v1):
    w = champion_v1
    c = w["contract"].with_aliases({"country": {"United States": "US"}})
    frame = w["traffic"][w["traffic"]["country"] == "US"].iloc[:20].copy()
    frame[c.request_id] = [f"alias-{i}" for i in range(len(frame))]
    named = frame.assign(country="United States")
    with TestClient(create_app(w["settings"], c, poll_seconds=60.0)) as client:
        by_code = client.post(
            "/predict", json={"records": records_of(frame.assign(**{c.request_id: frame[c.request_id] + "-code"}), c)}
        )
        by_name = client.post("/predict", json={"records": records_of(named, c)})
    assert by_code.status_code == by_name.status_code == 200, by_name.text
    a = [p["score"] for p in by_code.json()["predictions"]]
    b = [p["score"] for p in by_name.json()["predictions"]]
    np.testing.assert_array_equal(a, b)
    logged = Store.from_settings(w["settings"], c).read_predictions()
    assert set(logged[logged[c.request_id].isin(named[c.request_id])]["country"]) == {"United States"}


def test_awkward_but_valid_records_take_the_full_check_and_score_the_same(champion_v1):
    w = champion_v1
    c = w["contract"]
    frame = w["traffic"].iloc[:20].copy()
    frame[c.request_id] = [f"awkward-{i}" for i in range(len(frame))]
    recs = records_of(frame, c)
    for i, rec in enumerate(recs):  # spellings only ingest's full rules read
        rec["auto_renew"] = "yes" if rec["auto_renew"] else "no"
        rec["tenure_days"] = str(rec["tenure_days"])
        if i % 2:
            rec[c.timestamp] = int(pd.Timestamp(rec[c.timestamp]).timestamp())
    with TestClient(_app(w)) as client:
        gw = client.app.state.gateway
        assert gw.door._quick(recs[0], datetime.now()) is None
        r = client.post("/predict", json={"records": recs})
        assert r.status_code == 200, r.text
    logged = Store.from_settings(w["settings"], c).read_predictions()
    logged = logged[logged[c.request_id].str.startswith("awkward-")].set_index(c.request_id).loc[frame[c.request_id]]
    expected = training.score(w["reg"].load(version=w["v1"]), logged.reset_index(), c)
    assert np.array_equal([p["score"] for p in r.json()["predictions"]], expected)
    assert np.array_equal(logged["score"].to_numpy(), expected)


def test_a_logged_row_the_store_checks_refuse_is_quarantined_not_lost(champion_v1):
    w = champion_v1
    c = w["contract"]
    app = _app(w)
    with TestClient(app):
        gw = app.state.gateway
        good = gw.door.admit(json.dumps(records_of(w["traffic"].iloc[:1], c)[0] | {c.request_id: "q-ok"}).encode())
        row = good.records[0] | {"model_name": "m", "model_version": "1", "variant": "champion"}
        row |= {"score": 0.5, "predicted_label": "1", "latency_ms": 1.0}
        gw._store_rows([row, row | {c.request_id: "q-bad", "score": "not a number"}])
        metrics = gw.metrics.render()[0].decode()
    store = Store.from_settings(w["settings"], c)
    assert store.existing_request_ids(["q-ok", "q-bad"]) == {"q-ok"}
    q = store.read_quarantine()
    assert q[q["source"] == "gateway"]["reason"].str.startswith("wrong_type:score").sum() == 1
    assert "driftline_serve_log_rows_quarantined_total 1.0" in metrics
