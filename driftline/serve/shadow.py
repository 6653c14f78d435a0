"""Shadow scoring off the request path: the challenger scores what the champion answered, later.

Requests hand their checked rows to :meth:`Shadow.offer`, which only appends to a bounded queue
(a full queue skips the rows and counts them; it never blocks or fails a request). A background
thread scores queued rows in batches (one predict for many rows costs about as much as one row)
and hands the results to ``emit`` — the gateway's rollout log. A challenger that raises is
recorded as an error row per request, never as a failed request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("driftline.serve")


class Shadow:
    """A bounded queue of (served, rows, answers) and the thread that shadow-scores them."""

    def __init__(
        self,
        emit: Callable[[list[dict[str, Any]]], Any],
        *,
        capacity: int = 10_000,
        batch_rows: int = 256,
        wait_seconds: float = 0.05,
        on_skipped: Callable[[int], None] | None = None,
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        self._emit = emit
        self.capacity = capacity
        self.batch_rows = batch_rows
        self.wait_seconds = wait_seconds
        self._on_skipped = on_skipped or (lambda n: None)
        self._on_error = on_error or (lambda n: None)
        self._queue: deque[tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]] = deque()
        self._depth = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.scored = 0
        self.skipped = 0
        self.failed = 0

    @property
    def depth(self) -> int:
        return self._depth

    def start(self) -> Shadow:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="driftline-shadow", daemon=True)
            self._thread.start()
        return self

    def offer(self, challenger: Any, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> bool:
        """Queue ``rows`` for ``challenger`` (a Served); False (counted as skipped) when full or stopped."""
        with self._cond:
            if self._stop or self._depth + len(rows) > self.capacity:
                self.skipped += len(rows)
                self._on_skipped(len(rows))
                return False
            self._queue.append((challenger, rows, meta))
            self._depth += len(rows)
            if self._depth >= self.batch_rows:
                self._cond.notify()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Score what is queued (within ``timeout``) and stop."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _take(self) -> list[tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]]:
        out = []
        n = 0
        while self._queue and (not out or n + len(self._queue[0][1]) <= self.batch_rows):
            item = self._queue.popleft()
            out.append(item)
            n += len(item[1])
        self._depth -= n
        return out

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    if self._stop:
                        return
                    self._cond.wait(self.wait_seconds)
                    continue
                if self._depth < self.batch_rows and not self._stop:
                    self._cond.wait(self.wait_seconds)
                batch = self._take()
            self._score(batch)

    def _score(self, batch: list[tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]]) -> None:
        by_model: dict[int, tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for served, rows, meta in batch:
            _, r, m = by_model.setdefault(id(served), (served, [], []))
            r.extend(rows)
            m.extend(meta)
        out: list[dict[str, Any]] = []
        for served, rows, meta in by_model.values():
            started = time.perf_counter()
            try:
                scores = served.scorer(rows).tolist()
                error = None
            except Exception as e:  # a challenger that fails is evidence, not an outage
                scores, error = [None] * len(rows), f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]
                self.failed += len(rows)
                self._on_error(len(rows))
                log.error("shadow scoring with version %s failed: %s", served.version, error)
            per_row = (time.perf_counter() - started) * 1000.0 / max(1, len(rows))
            for m, s in zip(meta, scores, strict=True):
                out.append(dict(m, model_version=served.version, score=s, error=error, latency_ms=per_row))
            self.scored += len(rows)
        if out:
            self._emit(out)
