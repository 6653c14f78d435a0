"""The log writer: scored rows go to the predictions log through a bounded queue, in batches.

Rows are plain dicts (one per scored record). ``offer`` takes all of a request's rows or none
of them: when they do not fit, or the writer is stopping, it answers False and the caller
refuses the request (503), so a row is never accepted and then lost. A background thread writes
batches when ``batch_rows`` are waiting or every ``flush_seconds``; a failed write keeps its
rows queued and is retried. ``stop`` refuses new rows and drains everything accepted before it
returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("driftline.serve")

DEFAULT_CAPACITY = 10_000
DEFAULT_BATCH_ROWS = 500
DEFAULT_FLUSH_SECONDS = 0.5


class LogWriter:
    """A bounded queue of prediction rows and the thread that appends them to the store.

    ``append`` takes a list of rows and stores them (the gateway checks them as ingest does and
    appends them to the predictions log).
    ``on_written(n)`` and ``on_dropped(n)`` are optional metric hooks; rows are only dropped
    when ``stop`` runs out of ``drain_timeout`` while the store keeps failing.
    """

    def __init__(
        self,
        append: Callable[[list[dict[str, Any]]], Any],
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        retry_seconds: float = 1.0,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        if capacity < 1 or batch_rows < 1:
            raise ValueError("capacity and batch_rows must be at least 1")
        self._append = append
        self.capacity = capacity
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self._on_written = on_written or (lambda n: None)
        self._on_dropped = on_dropped or (lambda n: None)
        self._frames: deque[list[dict[str, Any]]] = deque()
        self._depth = 0
        self._cond = threading.Condition()
        self._accepting = False
        self._stopping = False
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    @property
    def depth(self) -> int:
        """Rows accepted and not yet stored (including a batch being written)."""
        return self._depth

    def start(self) -> LogWriter:
        """Start the background thread and begin accepting rows."""
        with self._cond:
            if self._thread is not None:
                return self
            self._accepting, self._stopping = True, False
            self._thread = threading.Thread(target=self._run, name="driftline-log-writer", daemon=True)
            self._thread.start()
        return self

    def offer(self, rows: list[dict[str, Any]]) -> bool:
        """Queue all of ``rows``, or none when they do not fit or the writer is not accepting."""
        n = len(rows)
        with self._cond:
            if not self._accepting or self._depth + n > self.capacity:
                return False
            if n:
                self._frames.append(rows)
                self._depth += n
                if self._depth >= self.batch_rows:
                    self._cond.notify()
        return True

    def stop(self, drain_timeout: float = 30.0) -> int:
        """Refuse new rows, write every accepted one (within ``drain_timeout``); rows left unwritten."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(drain_timeout)
        with self._cond:
            left = self._depth
            if left:  # the store kept failing until the deadline: say so, count them
                self._abandoned = True
                self.dropped += left
                self._on_dropped(left)
                log.error(
                    "log writer: %d accepted rows could not be stored before shutdown (%s)", left, self.last_error
                )
                self._frames.clear()
                self._depth = 0
            self._stopping = True
            self._thread = None
        return left

    def _take(self) -> list[list[dict[str, Any]]]:
        """Requests' rows adding up to about ``batch_rows`` (whole requests; they stay counted until written)."""
        out: list[list[dict[str, Any]]] = []
        count = 0
        for frame in self._frames:
            if out and count + len(frame) > self.batch_rows:
                break
            out.append(frame)
            count += len(frame)
        return out

    def _run(self) -> None:
        while not self._abandoned:
            with self._cond:
                if not self._frames and not self._stopping:
                    self._cond.wait(self.flush_seconds)
                if not self._frames:
                    if self._stopping:
                        return
                    continue
                if self._depth < self.batch_rows and not self._stopping:
                    # a partial batch: give it the rest of the flush interval to fill up
                    self._cond.wait_for(lambda: self._depth >= self.batch_rows or self._stopping, self.flush_seconds)
                batch = self._take()
            n = sum(len(f) for f in batch)
            try:
                self._append([row for rows in batch for row in rows])
            except Exception as e:  # the store is down or locked: keep the rows, try again
                message = " ".join(str(e).split())[:300]
                if message != self.last_error:
                    log.error("log writer: cannot store %d rows, retrying (%s)", n, message)
                self.last_error = message
                time.sleep(self.retry_seconds)
                continue
            with self._cond:
                if self._abandoned:
                    return
                for _ in batch:
                    self._frames.popleft()
                self._depth -= n
                self.written += n
                self.last_error = None
            self._on_written(n)
