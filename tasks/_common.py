"""Retry policy and run context shared by the task modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline.errors import DriftlineError

RETRIES = 2
RETRY_DELAY_SECONDS = [2, 10]


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that may pass on a second try (I/O, locks, servers), not bad input."""
    try:
        state.result()
    except (DriftlineError, ValueError, KeyError, TypeError):
        return False
    except Exception:
        return True
    return False


@dataclass
class RunContext:
    """Settings, contract, store and registry of one flow run (built once, passed to tasks)."""

    settings: Any
    contract: Any
    store: Any
    registry: Any
    actor: str
