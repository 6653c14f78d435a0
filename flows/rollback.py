"""Manual rollback: move the champion alias back (no retraining, no redeploy)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks import registry as r


@flow(name="rollback", log_prints=True)
def rollback(
    reason: str,
    to_version: int | None = None,
    previous: bool = False,
    config: str | None = None,
) -> dict[str, Any]:
    """Point ``champion`` at ``to_version`` (or, with ``previous``, the previous champion); say why."""
    actor = f"flow-run:{flow_run.get_id() or 'local'}"
    return r.rollback(config, to_version, previous, reason, actor)
