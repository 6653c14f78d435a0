"""The watcher: follow the ``champion`` alias and swap the served model without a restart.

Every ``poll_seconds`` a background thread re-reads the alias. When it points elsewhere, the
new version is loaded (through ``ModelRegistry.load``: driftline-registered, hash checked) off
the request path and the served :class:`Served` is replaced in one assignment, so a request
keeps the object it read first. A version that cannot be loaded (a foreign model forced to
champion, a tampered file) is logged once and counted; the old version keeps serving and that
version is not retried until the alias moves again or a reload is forced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.secrets import mask_text

log = logging.getLogger("driftline.serve")


@dataclass(frozen=True)
class Served:
    """What answers requests: the pipeline, its version, the model name and its row scorer."""

    pipeline: Any
    version: str
    model: str
    scorer: Any = None


@dataclass(frozen=True)
class CheckResult:
    """What one look at the alias found: the alias's version, whether the served model changed, an error."""

    alias_version: str | None
    changed: bool
    error: str | None = None


class Watcher:
    """Holds the served model and keeps it in step with the registry's ``alias``."""

    def __init__(
        self,
        registry: Any,
        *,
        alias: str = "champion",
        poll_seconds: float = 5.0,
        on_swap: Callable[[Served], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        make_scorer: Callable[[Any], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.alias = alias
        self.poll_seconds = poll_seconds
        self.current: Served | None = None
        self._on_swap = on_swap or (lambda s: None)
        self._on_failure = on_failure or (lambda m: None)
        self._make_scorer = make_scorer or (lambda p: None)
        self._failed: str | None = None
        self._alias_error: str | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, *, force: bool = False) -> CheckResult:
        """Re-read the alias and load its version when it is not the one served.

        ``force`` also retries a version that failed before. Never raises: errors are returned.
        """
        with self._check_lock:
            try:
                version = self.registry.alias_version(self.alias)
            except Exception as e:
                message = f"cannot read alias {self.alias!r}: {e}"
                repeated = message == self._alias_error
                self._alias_error = message
                return self._fail(None, message, quiet=repeated and not force)
            self._alias_error = None
            served = self.current
            if version is None or (served is not None and served.version == version):
                self._failed = None if version is None else self._failed
                return CheckResult(version, changed=False)
            if version == self._failed and not force:
                return CheckResult(version, changed=False, error=f"version {version} failed to load before")
            try:
                pipeline = self.registry.load(version=version)
                scorer = self._make_scorer(pipeline)
            except Exception as e:
                self._failed = version
                return self._fail(version, f"cannot load version {version}: {e}")
            new = Served(pipeline=pipeline, version=version, model=self.registry.model_name, scorer=scorer)
            self.current = new  # one reference assignment: requests hold whichever object they read
            self._failed = None
            was = "none" if served is None else served.version
            log.warning("serving %s version %s (was %s)", new.model, version, was)
            self._on_swap(new)
            return CheckResult(version, changed=True)

    def _fail(self, version: str | None, message: str, *, quiet: bool = False) -> CheckResult:
        line = mask_text(" ".join(message.split()))
        keep = "none" if self.current is None else f"version {self.current.version}"
        if not quiet:
            log.error("%s; still serving %s", line, keep)
        if version is not None:
            self._on_failure(line)
        return CheckResult(version, changed=False, error=line)

    def start(self) -> Watcher:
        """Start polling in a background thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="driftline-champion-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling (a load in progress is waited for up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()
