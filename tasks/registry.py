"""Tasks that move registry aliases (thin wrappers around driftline.registry.ModelRegistry)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from driftline.errors import DriftlineError, RefusedError

# What the rollback flow's parameters are called, for hints in its own terms.
FLOW_HINTS = {
    "no_previous": "pass to_version=N to name the version",
    "not_promotable": "pass force=true to move it anyway (recorded as forced)",
}


def hinted(error: DriftlineError, hints: dict[str, str]) -> str:
    """The error's one line, with the hint for its refusal code in the caller's own terms."""
    hint = hints.get(error.code) if isinstance(error, RefusedError) else None
    return f"{error} ({hint})" if hint else str(error)


@task(name="rollback-champion", cache_policy=NO_CACHE)
def rollback(
    config: str | None,
    to_version: int | None,
    previous: bool,
    reason: str,
    actor: str,
    force: bool = False,
    alias: str = "champion",
) -> dict[str, Any]:
    """Move ``alias`` back to ``to_version`` or to the previous holder; returns the move or the error.

    A refusal or bad parameter is returned as ``{"error": one line}`` (logged without a
    traceback) for the flow to fail on. No retries on purpose: a "previous" rollback retried
    after a failure that happened once the alias had already moved would step back too far.
    """
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings

    logger = get_run_logger()
    try:
        registry = ModelRegistry.from_settings(load_settings(config))
        if (to_version is None) == (not previous):
            raise DriftlineError("rollback needs exactly one target: to_version=N or previous=true")
        move = registry.rollback(
            to_version=to_version, previous=previous, reason=reason, actor=actor, alias=alias, force=force
        )
    except DriftlineError as e:
        line = hinted(e, FLOW_HINTS)
        logger.error("rollback refused: %s", line)
        return {"error": line}
    frm = "unset" if move.from_version is None else f"version {move.from_version}"
    if move.changed:
        forced = " (forced)" if move.forced else ""
        line = f"{alias}: {frm} → version {move.to_version}{forced} (history #{move.seq})"
    else:
        line = f"{alias} already pointed at version {move.to_version}; nothing changed"
    logger.info("%s; reason: %s", line, reason)
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
