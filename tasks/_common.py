"""Retry policy, run context and the per-model concurrency slot shared by the task modules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from driftline.errors import DriftlineError, TransientError
from driftline.pipeline import Context

RETRIES = 2
RETRY_DELAY_SECONDS = [2, 10]


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry failures that may pass on a second try (unreachable server, busy registry, timeouts).

    driftline marks those as ``TransientError``; any other ``DriftlineError`` is bad input or a
    refusal and fails at once, as do programming errors (ValueError, KeyError, TypeError). Other
    exceptions (raw I/O errors from libraries) are retried.
    """
    try:
        state.result()
    except TransientError:
        return True
    except (DriftlineError, ValueError, KeyError, TypeError):
        return False
    except Exception:
        return True
    return False


RunContext = Context
"""Settings, contract, store and registry of one flow run (driftline.pipeline.Context)."""


def slot_name(model_name: str) -> str:
    """The global concurrency limit the weekly and drift runs of one model share."""
    return "driftline-model-" + re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)


@contextmanager
def model_slot(model_name: str) -> Iterator[None]:
    """Hold the model's one slot: a weekly run and a drift retrain of one model never overlap.

    The limit (``driftline-model-<name>``, 1 slot) is created on first use; Prefect leases the
    slot, so a crashed run's slot is freed when its lease runs out. The registry's
    compare-and-set still guards the champion if anything runs outside Prefect.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = slot_name(model_name)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    # A 60 s lease (the server's minimum; renewed while the run lives): a crashed run frees the
    # model within a minute, not the default 5.
    with concurrency(name, occupy=1, strict=True, lease_duration=60):
        yield
