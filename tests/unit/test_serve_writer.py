"""The log writer against a real SQLite store: batches, drain on stop, a full queue refuses."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from driftline.serve.door import admit
from driftline.serve.writer import LogWriter
from driftline.simulate import churn_contract
from driftline.store import Store

BASE = {
    "user_id": "u1",
    "event_time": "2026-01-05T10:00:00",
    "country": "FR",
    "plan": "basic",
    "device": "desktop",
    "tenure_days": 15,
    "sessions_per_week": 14,
    "days_since_last_login": 0,
    "support_tickets": 0,
    "payment_failures": 0,
    "query_length_mean": 36.0,
    "auto_renew": False,
}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'store.db'}", churn_contract()).create()


def rows(prefix: str, n: int) -> list[list[dict]]:
    """``n`` one-row requests' log rows, as the gateway logs them."""
    body = json.dumps({"records": [dict(BASE, request_id=f"{prefix}-{i}") for i in range(n)]}).encode()
    extra = {"model_name": "m", "model_version": "1", "variant": "champion", "score": 0.25}
    extra |= {"predicted_label": "0", "latency_ms": 1.5}
    return [[dict(r, **extra)] for r in admit(body, churn_contract()).records]


def append_to(store: Store):
    """The store's append for a list of log rows."""
    return lambda batch: store.append_predictions(pd.DataFrame.from_records(batch))


class Recording:
    """The store's append, remembering batch sizes; ``gate`` (when set) holds writes back."""

    def __init__(self, store: Store, fail_first: int = 0) -> None:
        self.store = store
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_first = fail_first

    def __call__(self, batch: list[dict]) -> None:
        self.gate.wait(30)
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("database is locked")
        self.store.append_predictions(pd.DataFrame.from_records(batch))
        self.sizes.append(len(batch))


def test_rows_are_written_in_batches(store):
    rec = Recording(store)
    rec.gate.clear()
    writer = LogWriter(rec, batch_rows=10, flush_seconds=0.2).start()
    for frame in rows("b", 35):
        assert writer.offer(frame)
    assert writer.depth == 35
    rec.gate.set()
    deadline = time.monotonic() + 10
    while writer.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.depth == 0 and writer.written == 35
    assert max(rec.sizes) == 10 and sum(rec.sizes) == 35 and len(rec.sizes) <= 5
    assert store.count("predictions") == 35
    assert writer.stop() == 0


def test_stop_drains_everything_accepted_and_then_refuses(store):
    writer = LogWriter(append_to(store), batch_rows=1000, flush_seconds=60).start()
    for frame in rows("d", 20):
        assert writer.offer(frame)
    assert store.count("predictions") == 0  # nothing flushed yet: the batch is not full
    assert writer.stop() == 0
    assert store.count("predictions") == 20 and writer.dropped == 0
    assert not writer.offer(rows("late", 1)[0])


def test_a_full_queue_refuses_a_whole_request(store):
    rec = Recording(store)
    rec.gate.clear()
    writer = LogWriter(rec, capacity=5, batch_rows=2, flush_seconds=0.05).start()
    frames = rows("f", 8)
    assert all(writer.offer(f) for f in frames[:4])
    big = frames[4] + frames[5]
    assert not writer.offer(big)  # 4 + 2 > 5: none of its rows are taken
    assert writer.offer(frames[6])  # one row still fits
    assert not writer.offer(frames[7])
    rec.gate.set()
    assert writer.stop() == 0
    stored = store.existing_request_ids([f"f-{i}" for i in range(8)])
    assert stored == {"f-0", "f-1", "f-2", "f-3", "f-6"}


def test_a_failing_store_is_retried_without_losing_rows(store, caplog):
    rec = Recording(store, fail_first=2)
    writer = LogWriter(rec, batch_rows=100, flush_seconds=0.05, retry_seconds=0.05).start()
    for frame in rows("e", 7):
        assert writer.offer(frame)
    assert writer.stop() == 0
    assert store.count("predictions") == 7 and writer.dropped == 0
    errors = [r for r in caplog.records if "cannot store" in r.getMessage()]
    assert len(errors) == 1  # the same error twice is logged once


def test_rows_the_store_never_takes_are_counted_as_dropped(store):
    rec = Recording(store, fail_first=10**6)
    dropped: list[int] = []
    writer = LogWriter(rec, flush_seconds=0.05, retry_seconds=0.05, on_dropped=dropped.append).start()
    assert writer.offer(rows("x", 3)[0])
    assert writer.stop(drain_timeout=0.5) == 1
    assert dropped == [1] and writer.dropped == 1
