"""The daily drift monitor's logic: compare the last production window with the champion's
reference profile, decide whether to alert, and debounce repeated alerts.

Debounce state is a small JSON file under the driftline home (``monitor/alerts.json``): the
last time each feature alerted. An alert whose features all alerted within the cool-down is
suppressed, so one drift does not start a storm of retrains; a new feature alerting gets
through.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.contract import Contract
from driftline.settings import Settings

ALERT_EVENT = "driftline.drift.alert"
WARN_EVENT = "driftline.drift.warn"
SCORE = "score"


@dataclass
class MonitorResult:
    """What the monitor saw: overall level, the flagged features and the full report."""

    level: str  # stable | warn | alert | insufficient_data | no_champion
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_rows: int
    flagged: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Any = None
    champion_version: str | None = None

    @property
    def event(self) -> str | None:
        return {"alert": ALERT_EVENT, "warn": WARN_EVENT}.get(self.level)

    def payload(self, model_name: str) -> dict[str, Any]:
        """The event payload: model, window, and per feature its value and thresholds."""
        return {
            "model": model_name,
            "champion_version": self.champion_version,
            "level": self.level,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "as_of": self.window_end.isoformat(),
            "n_rows": self.n_rows,
            "features": sorted(n for n, f in self.flagged.items() if f["severity"] == self.level),
            "details": self.flagged,
        }


def evaluate_window(
    store: Any, contract: Contract, settings: Settings, champion: Any, as_of: Any, days: int | None = None
) -> MonitorResult:
    """Drift of the last ``days`` of traffic before ``as_of`` against the champion's profile."""
    from driftline.drift import compare
    from driftline.training import score

    end = pd.Timestamp(as_of)
    if end.tzinfo is not None:
        end = end.tz_convert("UTC").tz_localize(None)
    start = end - pd.Timedelta(days=days or settings.windows.monitor_days)
    from driftline.weekly import profile_for

    profile = profile_for(champion, contract)
    if profile is None:
        return MonitorResult("no_champion", start, end, 0)
    frame = store.read_predictions(start, end)
    if len(frame) == 0:
        return MonitorResult("insufficient_data", start, end, 0, champion_version=champion.version)
    frame[SCORE] = score(champion.pipeline, frame, contract)
    report = compare(profile, frame, settings.drift, contract)
    flagged: dict[str, dict[str, Any]] = {}
    entries = list(report.by_severity())
    if report.score is not None:
        entries.append(report.score)
    for f in entries:
        if f.severity in ("warn", "alert"):
            flagged[f.name] = {
                "psi": round(float(f.psi), 6),
                "severity": f.severity,
                "warn": round(float(f.band.warn), 6),
                "alert": round(float(f.band.alert), 6),
                "configured_warn": f.band.configured_warn,
                "configured_alert": f.band.configured_alert,
                "key": bool(f.key),
            }
    severities = {f["severity"] for f in flagged.values()}
    if "alert" in severities:
        level = "alert"
    elif "warn" in severities:
        level = "warn"
    elif entries and all(f.severity == "insufficient_data" for f in entries):
        level = "insufficient_data"
    else:
        level = "stable"
    return MonitorResult(level, start, end, len(frame), flagged, report, champion.version)


def _state_path(home: Path) -> Path:
    return home / "monitor" / "alerts.json"


def load_alert_state(home: Path) -> dict[str, str]:
    """Last alert time (ISO) per feature; empty when the monitor never alerted."""
    p = _state_path(home)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def should_emit(result: MonitorResult, state: dict[str, str], cooldown_hours: float) -> bool:
    """False when every alerting feature already alerted within the cool-down (debounce)."""
    if result.level not in ("alert", "warn"):
        return False
    if result.level == "warn":
        return True  # warnings start nothing; they are not debounced
    features = [n for n, f in result.flagged.items() if f["severity"] == "alert"]
    now = result.window_end
    for name in features:
        last = state.get(name)
        if last is None or now - pd.Timestamp(last) >= pd.Timedelta(hours=cooldown_hours):
            return True
    return False


def record_alert(home: Path, result: MonitorResult) -> None:
    """Remember when these features alerted (atomic write: a crash leaves the old state)."""
    state = load_alert_state(home)
    for name, f in result.flagged.items():
        if f["severity"] == "alert":
            state[name] = result.window_end.isoformat()
    p = _state_path(home)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".alerts-")
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    Path(tmp).replace(p)


def report_markdown(result: MonitorResult, html_path: str | None = None) -> str:
    """The monitor's finding as a short markdown page (the Prefect artifact)."""
    lines = [
        f"# Drift monitor: {result.level}",
        "",
        f"- window: {result.window_start.isoformat()} → {result.window_end.isoformat()} ({result.n_rows:,} rows)",
        f"- champion: {result.champion_version or '-'}",
    ]
    if result.flagged:
        lines += ["", "| feature | PSI | warn | alert | severity |", "|---|---:|---:|---:|---|"]
        lines += [
            f"| {n} | {f['psi']:.4f} | {f['warn']:.4f} | {f['alert']:.4f} | {f['severity']} |"
            for n, f in result.flagged.items()
        ]
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"
