"""Flow tests run against a real, temporary Prefect server (prefect_test_harness)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _config_file_names_home(monkeypatch):
    """Flow tests point at a driftline.yaml whose `home` must win over the per-test DRIFTLINE_HOME."""
    monkeypatch.delenv("DRIFTLINE_HOME", raising=False)
