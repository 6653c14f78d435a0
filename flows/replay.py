"""Policy replay: replay the store's history under retraining policies in scratch registries and
report cost (retrains) against performance, with a recommended ``driftline.yaml`` snippet."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import replay as t


@flow(name="replay", log_prints=True)
def replay(
    start: str,
    end: str,
    policies: list[str] | None = None,
    seed: int | None = None,
    resamples: int = 200,
    min_recovery: float = 0.9,
    config: str | None = None,
    html: str | None = None,
) -> dict[str, Any]:
    """Replay ``policies`` (default never, weekly, drift) from ``start`` to ``end``; returns the report."""
    replayer, parsed, order = t.prepare(config, start, end, policies or [], seed, resamples)
    for policy in order:
        t.replay_policy(replayer, policy)
    return t.build_report(replayer, parsed, min_recovery, html)
