"""Shared fixtures: a tiny contract, settings isolated under tmp_path, the CI PostgreSQL URL."""

from __future__ import annotations

import os

import pytest

from driftline.contract import Contract, parse_contract

TINY_CONTRACT = {
    "name": "tiny",
    "entity_id": "user_id",
    "request_id": "request_id",
    "timestamp": "event_time",
    "target": {"name": "churned", "positive": 1},
    "segment": "country",
    "features": {
        "country": {"type": "categorical", "vocabulary": ["US", "GB", "DE"], "key": True},
        "plan": {"type": "categorical", "vocabulary": ["free", "pro"], "closed": True},
        "tenure_days": {"type": "numeric", "range": [0, 1000]},
        "score_hint": {"type": "numeric", "nullable": True},
        "auto_renew": {"type": "boolean"},
    },
}


@pytest.fixture
def tiny_contract() -> Contract:
    return parse_contract(TINY_CONTRACT)


@pytest.fixture(scope="session", autouse=True)
def _quiet_services():
    """The environment `driftline run`/`demo` would set, fixed for the whole session.

    Those commands only set these when unset; fixing them up front keeps Prefect's settings the
    same in every test, so Prefect never re-creates its log handlers on a test's captured (and
    later closed) stderr.
    """
    from driftline.cli.run import quiet_environment

    mp = pytest.MonkeyPatch()
    for key, value in quiet_environment().items():
        mp.setenv(key, value)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test gets its own DRIFTLINE_HOME and no stray settings from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("DRIFTLINE_") and key not in ("DRIFTLINE_TEST_PG_URL", "DRIFTLINE_CHROMIUM"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL URL that .ci/run provides; required in CI, skipped elsewhere with the reason."""
    url = os.environ.get("DRIFTLINE_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide DRIFTLINE_TEST_PG_URL (see .ci/run)")
        pytest.skip("no PostgreSQL: set DRIFTLINE_TEST_PG_URL (.ci/run starts one)")
    return url
