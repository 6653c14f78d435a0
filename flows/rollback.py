"""Manual rollback: move the champion alias back (no retraining, no redeploy)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from tasks import registry as r


@flow(name="rollback", log_prints=True)
def rollback(
    reason: str,
    to_version: int | None = None,
    previous: bool = False,
    force: bool = False,
    config: str | None = None,
) -> Any:
    """Point ``champion`` at ``to_version`` (or, with ``previous``, the previous champion); say why.

    The target must pass the same rule as a promotion (registered by driftline, gates and
    validation passed) unless ``force``. A refusal fails the run with one line.
    """
    actor = f"flow-run:{flow_run.get_id() or 'local'}"
    result = r.rollback(config, to_version, previous, reason, actor, force)
    if "error" in result:
        return Failed(message=result["error"], data=result)
    return result
