"""The MLflow UI tells the story: a real ``mlflow server``, a version registered by the weekly pipeline
through it, and its page rendered by headless Chromium (after the React app ran): the description's
first line — the trigger and the reason — is on the page."""

from __future__ import annotations

import html
import re
import subprocess

import pandas as pd
import pytest
import yaml

from tests.system.support import (
    ARTIFACTS,
    BIN,
    child_env,
    free_port,
    http_ok,
    require_binary,
    service,
    wait_for,
)

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "churn-story"
START = pd.Timestamp("2026-01-05")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1:<free port> with a SQLite store and proxied artifacts."""
    require_binary("mlflow")
    root = tmp_path_factory.mktemp("mlflow-story")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "mlflow-server.log"
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with service(cmd, log=log, env=child_env(), cwd=root) as proc:
        wait_for(lambda: http_ok(f"{uri}/health"), timeout=120, what="mlflow server /health", proc=proc, log=log)
        yield {"uri": uri, "root": root}


def _bootstrap(server, tmp_path):
    """The weekly pipeline's first week against the server: version 1 with its description."""
    from driftline import pipeline
    from driftline.contract import load_contract
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings
    from driftline.simulate import simulate
    from driftline.store import Store

    sim = simulate(weeks=5, users=900, scenarios="stable", seed=5, start=START.date())
    contract = sim.contract.save(tmp_path / "contract.yaml")
    cfg = {
        "home": str(tmp_path / "home"),
        "contract": str(contract),
        "model_name": MODEL,
        "mlflow_tracking_uri": server["uri"],
        "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 1},
        "sampling": {"test_size": 600},
        "training": {"estimator_params": {"max_iter": 20}, "min_train_rows": 100},
        "feedback": {"enabled": False},
        "edge_cases": {"enabled": False},
    }
    (tmp_path / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    s = load_settings(tmp_path / "driftline.yaml")
    s.ensure_home()
    c = load_contract(s.contract)
    store = Store.from_settings(s, c).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    reg = ModelRegistry.from_settings(s)
    outcome = pipeline.run_week(
        pipeline.Context(s, c, store, reg, "system-test"), START + pd.Timedelta(weeks=4, hours=3)
    )
    assert outcome.status == "registered", outcome.message
    return reg, outcome


def _dom(chromium: str, url: str, profile) -> str:
    proc = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1440,1300", "--virtual-time-budget=30000",
            "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_version_page_shows_the_trigger_and_the_reason(server, tmp_path):
    chromium = require_binary("chromium", env_var="DRIFTLINE_CHROMIUM")
    reg, outcome = _bootstrap(server, tmp_path)
    version = outcome.summary["registration"]["version"]
    description = reg.version_description(version)
    first = description.splitlines()[0]
    codes = outcome.summary["drift"]["codes"]
    assert first == f"First version (bootstrap): {codes[0]['text']}"  # the trigger and the reason
    assert reg.ui_url(version) == f"{server['uri']}/#/models/{MODEL}/versions/{version}"
    assert outcome.summary["mlflow"]["ui"] == reg.ui_url(version)

    url = reg.ui_url(version)
    text, dom = "", ""
    for attempt in range(3):  # the first load of the UI's bundle on a busy machine can take long
        dom = _dom(chromium, url, tmp_path / f"profile-{attempt}")
        shown = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", shown)).split())  # what the page shows
        if first in text:
            break
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "mlflow-version-page.html").write_text(dom)
    assert f"Version {version}" in text, text[:2000]
    assert first in text, text[:4000]
