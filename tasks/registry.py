"""Tasks that move registry aliases (thin wrappers around driftline.registry.ModelRegistry)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE


@task(name="rollback-champion", cache_policy=NO_CACHE)
def rollback(
    config: str | None, to_version: int | None, previous: bool, reason: str, actor: str, alias: str = "champion"
) -> dict[str, Any]:
    """Move ``alias`` back to ``to_version`` or to the previous holder; returns the recorded move.

    No retries on purpose: a "previous" rollback retried after a failure that happened once the
    alias had already moved would step back one version too far.
    """
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings

    registry = ModelRegistry.from_settings(load_settings(config))
    move = registry.rollback(to_version=to_version, previous=previous, reason=reason, actor=actor, alias=alias)
    frm = "unset" if move.from_version is None else f"version {move.from_version}"
    if move.changed:
        line = f"{alias}: {frm} → version {move.to_version} (history #{move.seq})"
    else:
        line = f"{alias} already pointed at version {move.to_version}; nothing changed"
    get_run_logger().info("%s; reason: %s", line, reason)
    create_markdown_artifact(
        "\n".join(
            [
                f"# Rollback of {registry.model_name}",
                "",
                f"- {line}",
                f"- reason: {reason}",
                f"- by: {actor}",
                f"- serving reads `models:/{registry.model_name}@{alias}`",
            ]
        ),
        key="rollback",
        description=line,
    )
    return move.to_dict()
