"""Rollout decisions in words: the flow's artifact, its table rows and its event payloads.

Plain text and dicts only (no Prefect), so the flow's tasks, the CLI and the demo say the same.
"""

from __future__ import annotations

import json
import math
from typing import Any

from driftline.registry.rollouts import Rollout
from driftline.rollout import RolloutDecision


def decision_row(before: Rollout | None, decision: RolloutDecision) -> dict[str, Any]:
    """One line of the run's table: where the rollout was, what was decided, where it is now."""
    after = decision.rollout
    ev = decision.evidence
    return {
        "phase": before.phase if before else (after.phase if after else "-"),
        "share": before.share if before else (after.share if after else 0.0),
        "action": decision.action,
        "reasons": [w.code for w in decision.reasons],
        "requests": dict(ev.requests) if ev else {},
        "labelled": dict(ev.labelled) if ev else {},
        "now": f"{after.phase} {after.share:g}%" if after else "-",
    }


def event_payload(model: str, before: Rollout | None, decision: RolloutDecision) -> dict[str, Any]:
    """What a ``driftline.rollout.<action>`` event carries (JSON-safe: undefined numbers are null)."""
    after = decision.rollout
    shown = before if before is not None else after
    payload = {
        "model": model,
        "rollout_id": shown.rollout_id if shown else None,
        "challenger_version": shown.challenger if shown else None,
        "champion_version": shown.champion if shown else None,
        "action": decision.action,
        "phase": shown.phase if shown else None,
        "share": shown.share if shown else None,
        "phase_after": after.phase if after else None,
        "share_after": after.share if after else None,
        "reasons": [w.to_dict() for w in decision.reasons],
        "evidence": None if decision.evidence is None else decision.evidence.to_dict(),
    }
    return json.loads(json.dumps(_finite(payload), default=str))


def decision_markdown(model: str, before: Rollout | None, decision: RolloutDecision, *, metric: str) -> str:
    """The decision as a reader of the flow run needs it: phase, sample sizes, metrics, action, reasons."""
    after = decision.rollout
    shown = before if before is not None else after
    if shown is None:
        head = [f"# Rollout of {model}", "", f"**{decision.action}**: no rollout"]
    else:
        here = where(shown)
        now = where(after) if after is not None else "-"
        head = [
            f"# Rollout {shown.rollout_id} of {model}: version {shown.challenger} vs champion {shown.champion}",
            "",
            f"**Decision: {decision.action}** at {here}{'' if now == here else f' → now {now}'}"
            + (" (paused)" if shown.paused else ""),
        ]
    lines = [*head, ""]
    ev = decision.evidence
    if ev is not None:
        variants = list(dict.fromkeys([*ev.requests, *ev.labelled, *ev.metric]))
        if variants:
            lines += ["| | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
            rows = [
                ("requests", ev.requests, "{:d}"),
                ("challenger failures", ev.errors, "{:d}"),
                ("p99 latency (ms)", ev.p99_ms, "{:.1f}"),
                ("labelled", ev.labelled, "{:d}"),
                ("positives", ev.positives, "{:d}"),
                (metric, ev.metric, "{:.4f}"),
            ]
            for label, values, fmt in rows:
                if values:
                    lines.append(f"| {label} | " + " | ".join(_fmt(values.get(v), fmt) for v in variants) + " |")
            if ev.interval:
                cells = []
                for v in variants:
                    iv = ev.interval.get(v)
                    cells.append(f"{_fmt(iv[0], '{:.4f}')} – {_fmt(iv[1], '{:.4f}')}" if iv else "-")
                lines.append(f"| {metric} 95% interval | " + " | ".join(cells) + " |")
            lines.append("")
        facts = []
        if ev.paired:
            facts.append(f"- paired requests (scored by both): {ev.paired}")
        if ev.agreement is not None:
            facts.append(f"- agreement at the threshold: {ev.agreement:.1%}")
        if ev.score_psi is not None and math.isfinite(ev.score_psi):
            facts.append(f"- score PSI between the models: {ev.score_psi:.3f}")
        if ev.paired_diff:
            est, low, high = ev.paired_diff
            champ = "" if ev.champion_metric is None else f" (champion {ev.champion_metric:.4f})"
            facts.append(
                f"- {metric}, challenger − champion on the same rows: {est:+.4f} [{low:+.4f}, {high:+.4f}]{champ}"
            )
        if ev.worst_segments:
            worst = ", ".join(
                f"{s['feature']}={s['value']} {s['disagreement']:.0%} of {s['rows']}" for s in ev.worst_segments
            )
            facts.append(f"- most disagreement: {worst}")
        if facts:
            lines += [*facts, ""]
    lines += ["| reason | level | metric | value | threshold | |", "|---|---|---|---|---|---|"]
    for w in decision.reasons:
        cells = [w.code, w.level, w.metric or "-", _fmt(w.value, "{:.4g}"), _fmt(w.threshold, "{:.4g}"), w.text]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def where(r: Rollout) -> str:
    """Where a rollout stands: its phase, or its canary step and share."""
    if r.phase == "canary":
        return f"canary step {r.step + 1} ({r.share:g}%)"
    return r.phase


def one_line(r: Rollout) -> str:
    """The rollout in one line (id, versions, where it stands)."""
    return f"rollout {r.rollout_id} of version {r.challenger} (champion {r.champion}): {where(r)}"


def pairs(values: dict[str, Any]) -> str:
    """``k=v, ...`` (``-`` when empty), for table cells."""
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
