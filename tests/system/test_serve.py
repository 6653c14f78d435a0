"""`driftline serve` as a real process: the champion moves under live traffic, SIGTERM loses nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from driftline.registry import ModelRegistry
from driftline.store import Store
from tests.system.support import BIN, child_env, free_port, http_ok, log_tail, service, wait_for
from tests.unit.test_serve_app import churn_frames, records_of, register_version, settings_for, write_settings

pytestmark = [pytest.mark.system, pytest.mark.slow]

POLL_SECONDS = 1.0


def _post(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_serve_follows_the_alias_under_traffic_and_drains_on_sigterm(tmp_path):
    traffic, labelled, contract = churn_frames()
    path = write_settings(tmp_path, contract)
    s = settings_for(path)
    reg = ModelRegistry.from_settings(s)
    v1 = register_version(reg, labelled, contract, "hist_gradient_boosting", "sys-v1")
    v2 = register_version(reg, labelled, contract, "logistic_regression", "sys-v2")
    reg.promote(v1, reason="test", actor="t")
    template = records_of(traffic.iloc[:50], contract)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    cmd = [str(BIN / "driftline"), "--config", str(path), "serve", "--port", str(port)]
    cmd += ["--poll-seconds", str(POLL_SECONDS)]
    with service(cmd, log=log, env=child_env(), cwd=tmp_path) as proc:
        wait_for(lambda: http_ok(f"{base}/readyz"), timeout=60, what="the gateway to be ready", proc=proc, log=log)

        # 1. a client streams requests while the champion alias moves
        seen: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def stream() -> None:
            i = 0
            while not stop.is_set():
                rec = dict(template[i % len(template)], request_id=f"move-{i}")
                status, body = _post(f"{base}/predict", rec)
                seen.append((time.monotonic(), status, body.get("version") if status == 200 else str(body)))
                i += 1

        client = threading.Thread(target=stream)
        client.start()
        time.sleep(1.0)
        reg.promote(v2, reason="test: move under traffic", actor="t")
        moved = time.monotonic()
        deadline = moved + POLL_SECONDS + 5
        while time.monotonic() < deadline and not any(v == v2 for _, _, v in seen):
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        client.join(15)
        failed = [(st, v) for _, st, v in seen if st != 200]
        assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}\n{log_tail(log)}"
        first_v2 = next((t for t, _, v in seen if v == v2), None)
        assert first_v2 is not None, f"responses never showed version {v2}\n{log_tail(log)}"
        assert first_v2 - moved <= POLL_SECONDS + 2.0
        versions = [v for _, _, v in seen]
        assert versions[0] == v1 and v2 not in versions[: versions.index(v2)]
        assert all(v == v2 for v in versions[versions.index(v2) :])  # no flapping back

        # 2. SIGTERM while requests are in flight and rows are queued
        ok_ids: list[str] = []
        lock = threading.Lock()
        stop.clear()

        def burst(k: int) -> None:
            n = 0
            while not stop.is_set():
                ids = [f"term-{k}-{n}-{j}" for j in range(20)]
                body = {"records": [dict(template[j], request_id=rid) for j, rid in enumerate(ids)]}
                try:
                    status, _ = _post(f"{base}/predict", body, timeout=30)
                except (urllib.error.URLError, OSError):
                    status = 0  # refused or cut: the server is going away
                if status == 200:
                    with lock:
                        ok_ids.extend(ids)
                elif status == 0:
                    return
                n += 1

        workers = [threading.Thread(target=burst, args=(k,)) for k in range(6)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(40)
        stop.set()
        for w in workers:
            w.join(30)
        # uvicorn re-raises the signal once it has shut down, so the process ends "killed by SIGTERM"
        assert code in (0, -signal.SIGTERM), log_tail(log)
    assert ok_ids, "no request succeeded before SIGTERM"
    stored = Store.from_settings(s, contract).existing_request_ids(ok_ids)
    missing = set(ok_ids) - stored
    assert not missing, f"{len(missing)} of {len(ok_ids)} answered rows are not in the store\n{log_tail(log)}"
    text = log.read_text()
    assert "log writer drained" in text and ", 0 not" in text
