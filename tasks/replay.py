"""Tasks of the replay flow: thin wrappers around :mod:`driftline.replay` (one copy of the logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from driftline import replay as rp


@task(name="prepare-replay", cache_policy=NO_CACHE)
def prepare(
    config: str | None, start: str, end: str, policies: list[str], seed: int | None, resamples: int
) -> tuple[rp.Replayer, list[rp.Policy], list[rp.Policy]]:
    """Parse the policies, load settings and contract, read the store's history once.

    Returns the replayer, the policies asked for, and the order to replay them in (with the
    ``never`` and ``weekly`` runs the report needs).
    """
    from driftline.contract import load_contract
    from driftline.errors import ConfigError
    from driftline.settings import load_settings
    from driftline.store import Store

    parsed = rp.parse_policies(policies)
    s = load_settings(config)
    if s.contract is None:
        raise ConfigError("no contract: set 'contract:' in driftline.yaml (or DRIFTLINE_CONTRACT)")
    contract = load_contract(s.contract)
    for p in parsed:
        p.settings_for(s)
    store = Store.from_settings(s, contract)
    try:
        replayer = rp.Replayer(s, contract, store, start, end, seed=seed, resamples=resamples)
        return replayer, parsed, rp.run_order(parsed)
    finally:
        store.dispose()


@task(name="replay-policy", cache_policy=NO_CACHE)
def replay_policy(replayer: rp.Replayer, policy: rp.Policy) -> dict[str, Any]:
    """Walk the weeks under one policy in its scratch registry."""
    result = replayer.run(policy)
    get_run_logger().info(
        "%s: %d retrains, %d promotions, %.1f s", policy.name, result.retrains, result.promotions, result.run_seconds
    )
    return {"policy": policy.name, "retrains": result.retrains, "promotions": result.promotions}


@task(name="replay-report", cache_policy=NO_CACHE)
def build_report(
    replayer: rp.Replayer, policies: list[rp.Policy], min_recovery: float, html: str | None
) -> dict[str, Any]:
    """The report, a ``replay`` markdown artifact, the HTML page when asked; removes the scratch registries."""
    try:
        report = rp.report(replayer, policies, min_recovery)
    finally:
        replayer.close()
    if html:
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        Path(html).write_text(rp.render_html(report), encoding="utf-8")
    create_markdown_artifact(
        "# Policy replay\n\n```\n" + rp.render_text(report) + "\n```\n",
        key="replay",
        description=f"recommended: {report['recommended']['policy']}",
    )
    return report
