"""The daily drift monitor's logic: compare the last production window with the champion's
reference profile, let the trigger policy decide the level, and debounce repeated alerts.

The level follows :func:`driftline.drift.decide`: ``alert`` (the event that starts a retrain)
when it says ``retrain``, ``warn`` for ``investigate``, ``stable`` for ``none``. Drift that is
a training–serving vocabulary skew (renamed categories, with a suggested mapping back to the
training values) does not count: the policy judges the window with the mapping applied, and
the skew is reported on its own (``driftline.skew.detected``), since its fix is the serving
mapping, not a new model.

Debounce is per drift episode: after an alert for champion version V, no further alert for V
until ``cooldown_hours`` after the episode's first alert, whatever features alert; a new
champion starts a new episode. The state is a small JSON document in the store's
``store_meta`` table, shared by every host that runs the monitor (without a store: the file
``monitor/alerts.json`` under the driftline home, written atomically).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from driftline.contract import Contract
from driftline.settings import DriftSettings, Settings
from driftline.weekly import SCORE, as_timestamp, profile_for

if TYPE_CHECKING:
    from driftline.drift import Decision, DriftReport, Profile

ALERT_EVENT = "driftline.drift.alert"
WARN_EVENT = "driftline.drift.warn"
SKEW_EVENT = "driftline.skew.detected"
LEVEL_OF_ACTION = {"retrain": "alert", "investigate": "warn", "none": "stable"}
STATE_FORMAT = 2
LEGACY = "*"  # an episode read from the old per-feature state file: champion unknown
_RANK = {"alert": 2, "warn": 1}


@dataclass
class MonitorResult:
    """What the monitor saw: level, flagged features, the policy's reasons, skew and the report."""

    level: str  # stable | warn | alert | insufficient_data | no_champion
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_rows: int
    flagged: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Any = None
    champion_version: str | None = None
    reasons: list[str] = field(default_factory=list)
    skew: dict[str, Any] | None = None  # features explained by vocabulary skew, their mappings

    @property
    def event(self) -> str | None:
        return {"alert": ALERT_EVENT, "warn": WARN_EVENT}.get(self.level)

    @property
    def features(self) -> list[str]:
        """The flagged features the policy counted, sorted."""
        return sorted(self.flagged)

    def _window(self, model_name: str) -> dict[str, Any]:
        return {
            "model": model_name,
            "champion_version": self.champion_version,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "as_of": self.window_end.isoformat(),
            "n_rows": self.n_rows,
        }

    def payload(self, model_name: str) -> dict[str, Any]:
        """The drift event's payload: window, level, counted features, per feature its values, reasons."""
        return {
            **self._window(model_name),
            "level": self.level,
            "features": self.features,
            "details": self.flagged,
            "reasons": list(self.reasons),
            "skew": self.skew,
        }

    def skew_payload(self, model_name: str) -> dict[str, Any] | None:
        """The skew event's payload (features and serving → training mappings), or None without skew."""
        if not self.skew:
            return None
        return {**self._window(model_name), **self.skew}


def flagged_features(report: DriftReport, explained: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Features (and the score) at warn or alert: PSI, bands, key flag, whether skew was corrected."""
    entries = list(report.by_severity())
    if report.score is not None:
        entries.append(report.score)
    return {
        f.name: {
            "psi": round(float(f.psi), 6),
            "severity": f.severity,
            "warn": round(float(f.band.warn), 6),
            "alert": round(float(f.band.alert), 6),
            "configured_warn": f.band.configured_warn,
            "configured_alert": f.band.configured_alert,
            "key": bool(f.key),
            "explained_by_skew": f.name in explained,
        }
        for f in entries
        if f.severity in _RANK
    }


def judge(
    report: DriftReport, settings: DriftSettings, primary_metric: str = "average_precision"
) -> tuple[str, Decision]:
    """The monitor's level for a report and the trigger policy's decision behind it."""
    from driftline.drift import decide

    decision = decide(report, settings, primary_metric=primary_metric)
    level = LEVEL_OF_ACTION[decision.action]
    entries = list(report.by_severity()) + ([report.score] if report.score is not None else [])
    if level == "stable" and entries and all(f.severity == "insufficient_data" for f in entries):
        level = "insufficient_data"
    return level, decision


def correct_for_skew(
    report: DriftReport,
    profile: Profile,
    frame: pd.DataFrame,
    training_sample: pd.DataFrame,
    contract: Contract,
    settings: DriftSettings,
    rescore: Callable[[pd.DataFrame], Any] | None = None,
) -> tuple[DriftReport, dict[str, Any] | None]:
    """The report the policy should judge, and the vocabulary skew that explains drift (or None).

    Runs :func:`driftline.validation.skew_check` of the window against the champion's training
    sample. For flagged features with a vocabulary finding that suggests a mapping (renamed
    categories), the window is measured again with the mappings applied (and rescored with
    ``rescore``, so the score's drift is the model's, not the rename's). A feature is explained
    when the mapping lowers its severity; then the remeasured report is returned, in which a
    pure rename no longer counts and a rename on top of a real shift still does.
    """
    from driftline.drift import compare
    from driftline.validation import skew_check
    from driftline.values import category_text

    flagged = flagged_features(report)
    found = skew_check(training_sample, frame, contract, row_level=False)
    candidates = {f.feature: f for f in found.findings if f.kind == "vocabulary" and f.mapping and f.feature in flagged}
    if not candidates:
        return report, None
    fixed = frame.copy()
    for name, finding in candidates.items():
        mapping = dict(finding.mapping or {})
        fixed[name] = category_text(frame[name]).map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
    if rescore is not None:
        fixed[SCORE] = rescore(fixed)
    again = compare(profile, fixed, settings, contract)
    explained = sorted(
        n for n in candidates if _RANK.get(again.features[n].severity, 0) < _RANK[report.features[n].severity]
    )
    if not explained:
        return report, None
    findings = []
    for n in explained:
        before, after, finding = report.features[n], again.features[n], candidates[n]
        findings.append(
            {
                "feature": n,
                "severity": finding.severity,
                "rows_affected": finding.rows_affected,
                "share_affected": round(float(finding.share_affected), 6),
                "drift_before": {"psi": round(float(before.psi), 6), "severity": before.severity},
                "drift_after_mapping": {"psi": round(float(after.psi), 6), "severity": after.severity},
                "summary": finding.summary,
                "suggested_fix": finding.suggested_fix,
            }
        )
    skew = {
        "features": explained,
        "mapping": {n: dict(candidates[n].mapping or {}) for n in explained},
        "findings": findings,
    }
    return again, skew


def evaluate_window(
    store: Any, contract: Contract, settings: Settings, champion: Any, as_of: Any, days: int | None = None
) -> MonitorResult:
    """Drift of the last ``days`` of traffic before ``as_of`` against the champion's profile, judged by the policy.

    ``report`` is the window as served (for the HTML report); the level, reasons and flagged
    features come from the window with vocabulary skew mapped back (see :func:`correct_for_skew`).
    """
    from driftline.drift import compare
    from driftline.training import score

    end = as_timestamp(as_of)
    start = end - pd.Timedelta(days=days or settings.windows.monitor_days)
    profile = profile_for(champion, contract)
    if profile is None:
        return MonitorResult("no_champion", start, end, 0)
    frame = store.read_predictions(start, end)
    if len(frame) == 0:
        return MonitorResult("insufficient_data", start, end, 0, champion_version=champion.version)
    frame[SCORE] = score(champion.pipeline, frame, contract)
    report = compare(profile, frame, settings.drift, contract)
    judged, skew = report, None
    if champion.training_sample is not None and len(champion.training_sample):
        judged, skew = correct_for_skew(
            report,
            profile,
            frame,
            champion.training_sample,
            contract,
            settings.drift,
            rescore=lambda f: score(champion.pipeline, f, contract),
        )
    level, decision = judge(judged, settings.drift, settings.gates.primary_metric)
    report.decision = decision  # the HTML report shows what the monitor decided
    flagged = flagged_features(judged, skew["features"] if skew else ())
    return MonitorResult(level, start, end, len(frame), flagged, report, champion.version, list(decision.reasons), skew)


# -- debounce -----------------------------------------------------------------------------------
def _state_path(home: Path) -> Path:
    return home / "monitor" / "alerts.json"


def _iso(value: Any) -> str | None:
    """A stored time as naive-UTC ISO text, or None when it is not a time."""
    if not isinstance(value, str):
        return None
    try:
        ts = as_timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(ts) else ts.isoformat()


def _state_key(model_name: str) -> str:
    return f"monitor.alerts:{model_name}"


def load_alert_state(home: Path, store: Any = None, model_name: str | None = None) -> dict[str, dict[str, Any]]:
    """Open alert episodes by champion version: ``{version: {"first_alert": iso, "features": [...]}}``.

    With ``store`` (and ``model_name``) the state lives in the store's ``store_meta`` table, so
    monitors on several hosts share one cool-down; a store without it yet falls back to the
    file ``<home>/monitor/alerts.json`` that earlier versions wrote. Empty when the monitor
    never alerted or the state is unreadable. The old format (``{feature: iso time}``, no
    champion) reads as one episode under :data:`LEGACY` that started at the latest of those
    times; it applies to whichever champion is serving, and the next alert rewrites the state.
    """
    text = store.get_meta(_state_key(model_name or "")) if store is not None else None
    try:
        data = json.loads(text) if text is not None else json.loads(_state_path(home).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if "episodes" in data:
        episodes = data.get("episodes")
        out: dict[str, dict[str, Any]] = {}
        for version, ep in (episodes if isinstance(episodes, dict) else {}).items():
            first = _iso(ep.get("first_alert")) if isinstance(ep, dict) else None
            if first is not None:
                features = ep.get("features")
                out[str(version)] = {
                    "first_alert": first,
                    "features": [str(f) for f in features] if isinstance(features, list) else [],
                }
        return out
    times = {str(k): t for k, v in data.items() if (t := _iso(v)) is not None}
    if not times:
        return {}
    return {LEGACY: {"first_alert": max(times.values(), key=pd.Timestamp), "features": sorted(times)}}


def _episode(result: MonitorResult, state: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    return state.get(str(result.champion_version or "")) or state.get(LEGACY)


def _open(episode: dict[str, Any] | None, now: pd.Timestamp, cooldown_hours: float) -> bool:
    return episode is not None and now - pd.Timestamp(episode["first_alert"]) < pd.Timedelta(hours=cooldown_hours)


def should_emit(result: MonitorResult, state: dict[str, dict[str, Any]], cooldown_hours: float) -> bool:
    """Whether to send the result's event: warnings always; an alert unless its champion's episode is open.

    An episode is open for ``cooldown_hours`` after its first alert (times are window ends).
    """
    if result.level == "warn":
        return True  # warnings start nothing; they are not debounced
    if result.level != "alert":
        return False
    return not _open(_episode(result, state), result.window_end, cooldown_hours)


def record_alert(home: Path, result: MonitorResult, store: Any = None, model_name: str | None = None) -> None:
    """Record a sent alert as the start of its champion's episode (atomic write).

    Only that champion's episode is kept: a change of champion ends every other one, and an
    old-format file is rewritten in the current format. With ``store``, the state goes to the
    store (one transaction), where every host's monitor reads it.
    """
    episode = {"first_alert": result.window_end.isoformat(), "features": result.features}
    data = {"format": STATE_FORMAT, "episodes": {str(result.champion_version or ""): episode}}
    if store is not None:
        store.set_meta(_state_key(model_name or ""), json.dumps(data, sort_keys=True))
        return
    p = _state_path(home)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".alerts-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(p)  # os.replace: readers see the old file or the new one, never half
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise


def report_markdown(result: MonitorResult, html_path: str | None = None) -> str:
    """The monitor's finding as a short markdown page (the Prefect artifact)."""
    lines = [
        f"# Drift monitor: {result.level}",
        "",
        f"- window: {result.window_start.isoformat()} → {result.window_end.isoformat()} ({result.n_rows:,} rows)",
        f"- champion: {result.champion_version or '-'}",
    ]
    lines += [f"- {r}" for r in result.reasons]
    if result.flagged:
        lines += ["", "| feature | PSI | warn | alert | severity |", "|---|---:|---:|---:|---|"]
        lines += [
            f"| {n} | {f['psi']:.4f} | {f['warn']:.4f} | {f['alert']:.4f} | {f['severity']}"
            f"{' (skew)' if f.get('explained_by_skew') else ''} |"
            for n, f in result.flagged.items()
        ]
    if result.skew:
        lines += [
            "",
            "## Training–serving skew",
            "",
            "Judged with these serving values mapped back to training's; fix the serving mapping, not the model.",
            "",
        ]
        for name, mapping in result.skew["mapping"].items():
            shown = ", ".join(f"{k} → {v}" for k, v in list(mapping.items())[:10])
            more = f" (+{len(mapping) - 10} more)" if len(mapping) > 10 else ""
            lines.append(f"- {name}: {shown}{more}")
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"
