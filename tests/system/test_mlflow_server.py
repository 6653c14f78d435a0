"""A real ``mlflow server`` on loopback holding two registered versions and a champion alias:
browse the registered model's page in headless Chromium, then promote / roll back / read the
history through the ``driftline`` CLI against that server."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.system.support import (
    ARTIFACTS,
    BIN,
    child_env,
    free_port,
    http_ok,
    require_binary,
    require_module,
    run_cli,
    service,
    wait_for,
)

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(300)]

MODEL = "churn-system"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _register_two(uri: str, store_url: str) -> None:
    """Versions 1 (bootstrap) and 2 (drift), both passing their gates; champion 1 -> 2."""
    from sklearn.linear_model import LogisticRegression

    from driftline.registry import ModelRegistry, Verdict

    reg = ModelRegistry(uri, MODEL, store_url=store_url)
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 40), "sessions_per_week": rng.uniform(0, 10, 40)})
    y = (x["sessions_per_week"] < 5).astype(int)
    for n, trigger in ((1, "bootstrap"), (2, "drift")):
        version = reg.register_candidate(
            verdict=Verdict(gates_passed=True),
            pipeline=LogisticRegression(C=float(n)).fit(x, y),
            input_example=x.head(3),
            params={"C": n},
            metrics={"test.average_precision": 0.5 + n / 10},
            tags={"trigger": trigger, "gate.passed": "true", "primary_metric": "average_precision"},
            artifacts={"contract.json": {"name": "system-test"}},
            idempotency_key=f"system-{n}",
        )
        assert version.version == str(n)
        reg.promote(version.version, reason=f"system test setup {n}", actor="system-test")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1:<free port> with a SQLite store under a temp folder."""
    require_binary("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "mlflow-server.log"
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    with service(cmd, log=log, env=child_env(), cwd=root) as proc:
        wait_for(lambda: http_ok(f"{uri}/health"), timeout=120, what="mlflow server /health", proc=proc, log=log)
        store_url = f"sqlite:///{root / 'store.db'}"  # driftline's store: alias history, registrations
        _register_two(uri, store_url)
        yield {"uri": uri, "root": root, "log": log, "proc": proc, "store_url": store_url}


def _champion(uri: str) -> str:
    """The version ``champion`` points at, read straight from the server's REST API."""
    url = f"{uri}/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion"
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(json.load(r)["model_version"]["version"])


def test_browse_registered_model_in_chromium(mlflow_server, tmp_path):
    chromium = require_binary("chromium", env_var="DRIFTLINE_CHROMIUM")
    require_module("playwright.sync_api")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "mlflow-registered-model.png"
    champion = _champion(mlflow_server["uri"])
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1300},
            timeout=60_000,
        )
        try:
            page = context.new_page()
            page.goto(f"{mlflow_server['uri']}/#/models/{MODEL}", wait_until="domcontentloaded", timeout=60_000)
            rows = page.get_by_role("row")
            for n in ("1", "2"):
                rows.filter(has_text=f"Version {n}").first.wait_for(timeout=60_000)
            champion_row = rows.filter(has_text=f"Version {champion}").first
            page.get_by_text("champion").first.wait_for(timeout=30_000)
            assert "champion" in champion_row.inner_text()
            other = "1" if champion == "2" else "2"
            assert "champion" not in rows.filter(has_text=f"Version {other}").first.inner_text()
            # The assistant side panel hides part of the table; close it when it is there.
            close = page.get_by_role("button", name="Close")
            if close.count():
                with contextlib.suppress(PlaywrightError):  # a layout without the panel
                    close.first.click(timeout=3_000)
            page.get_by_text("Versions", exact=True).first.scroll_into_view_if_needed(timeout=10_000)
            time.sleep(0.5)  # let the table finish its layout before the picture
            page.screenshot(path=str(shot))
        finally:
            context.close()
    assert shot.stat().st_size > 10_000


def _driftline(args: list[str], server: dict, cwd: Path):
    env = child_env(
        MLFLOW_TRACKING_URI=server["uri"],
        DRIFTLINE_STORE_URL=server["store_url"],
        DRIFTLINE_MODEL_NAME=MODEL,
        DRIFTLINE_HOME=str(cwd / "home"),
        USER="system-test",
    )
    return run_cli([str(BIN / "driftline"), *args], env=env, cwd=cwd, timeout=120)


def test_promote_rollback_history_through_cli(mlflow_server, tmp_path):
    require_binary("driftline")
    server, uri = mlflow_server, mlflow_server["uri"]
    start = _driftline(["models", "list", "--json"], server, tmp_path)
    assert start.returncode == 0, start.stderr
    versions = {v["version"]: v for v in json.loads(start.stdout)}
    assert set(versions) == {"1", "2"}
    assert versions["2"]["tags"]["trigger"] == "drift"
    before = _champion(uri)
    other = "1" if before == "2" else "2"

    # Roll back to the previous champion: one alias move, visible to serving at once.
    back = _driftline(["models", "rollback", "--previous", "--reason", "system test: bad canary"], server, tmp_path)
    assert back.returncode == 0, back.stderr
    assert f"champion: version {before} -> version {other}" in back.stdout
    assert _champion(uri) == other

    # Promote the other version again, by number.
    again = _driftline(["models", "promote", before, "--reason", "system test: fixed"], server, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _champion(uri) == before

    # Bad input: one line, exit 2, nothing changed.
    bad = _driftline(["models", "rollback", "--to", "99", "--reason", "no such version"], server, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert _champion(uri) == before

    history = _driftline(["models", "history", "--json"], server, tmp_path)
    assert history.returncode == 0, history.stderr
    moves = json.loads(history.stdout)
    tail = [(m["kind"], m["from_version"], m["to_version"], m["reason"], m["state"]) for m in moves[-2:]]
    assert tail == [
        ("rollback", before, other, "system test: bad canary", "done"),
        ("promote", other, before, "system test: fixed", "done"),
    ]
    assert all(m["actor"] == "system-test" for m in moves[-2:])
    assert [m["seq"] for m in moves] == list(range(1, len(moves) + 1))

    table = _driftline(["models", "history"], server, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "system test: bad canary" in table.stdout
