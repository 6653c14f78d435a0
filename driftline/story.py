"""Why each version exists, in words: MLflow descriptions, short tags, the reports' context and trend.

Pure functions that turn what a weekly run saw and decided (:mod:`driftline.weekly`'s step
results) into text for people — a version's markdown description (its first line is the trigger
and the reason), the registered model's description (what it is, its contract, how to roll
back), the short ``drift_summary`` tag, the sample sizes in words — plus the few calls that
put them in place: :func:`version_report` renders the drift report stored with a version (every
version, the first one included), :func:`publish_week` records the week's figures for the
trend panel and writes the week's report under the reports folder.

Sentences are rendered from the structured reason codes and numbers, never parsed back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from driftline.drift.report import ReportContext, TrendPoint, decision_state, next_steps, render_html
from driftline.values import finite as _finite

TRIGGER_WORDS = {
    "bootstrap": "First version (bootstrap)",
    "drift": "Retrained on drift",
    "performance": "Retrained on performance",
    "schedule": "Retrained on schedule",
    "manual": "Retrained by hand",
}
FIRST_LINE_MAX = 240
"""Characters of a description's first line (the trigger and the reason), kept readable in MLflow's UI."""


def _num(x: Any, digits: int = 4) -> str:
    v = _finite(x)
    return "–" if v is None else f"{v:.{digits}f}"


def _day(iso: Any) -> str:
    return "–" if not iso else str(iso)[:10]


def _window(tag: str | None) -> tuple[str, str] | None:
    """``start/end`` (a version's ``test_window`` tag) as a pair of ISO strings."""
    if not tag or "/" not in tag:
        return None
    a, b = tag.split("/", 1)
    return a, b


# -- the first line and the description ---------------------------------------------------------
def primary_reason(codes: Sequence[Mapping[str, Any]], action: str = "retrain") -> Mapping[str, Any] | None:
    """The reason that carries the decision: the first code at the decision's level (else the first)."""
    for c in codes:
        if c.get("level") == action:
            return c
    return codes[0] if codes else None


def first_line(trigger: str | None, codes: Sequence[Mapping[str, Any]], action: str = "retrain") -> str:
    """``<trigger in words>: <the reason>`` — what MLflow's version page shows first."""
    head = TRIGGER_WORDS.get(trigger or "manual", f"Retrained ({trigger})")
    reason = primary_reason(codes, action)
    text = str(reason.get("text", "")).strip() if reason is not None else ""
    line = f"{head}: {text}" if text else head
    return line if len(line) <= FIRST_LINE_MAX else line[: FIRST_LINE_MAX - 1] + "…"


def drift_tag(report: Any, trigger: str | None = None) -> str:
    """The short ``drift_summary`` tag: counts by severity and the largest PSI, or why it was not measured."""
    if report is None:
        return "not measured: no champion yet (bootstrap)" if trigger == "bootstrap" else "not measured"
    counts = report.severity_counts()
    feats = report.by_severity()
    parts = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n and k != "stable"]
    head = ", ".join(parts) if parts else "stable"
    if not feats:
        return f"{head}: no features compared"
    top = max(feats, key=lambda f: f.psi)
    return f"{head} of {len(feats)} features; max PSI {top.psi:.3f} ({top.name}); {report.n_current:,} rows"[:250]


def _gate_lines(gates: Mapping[str, Any]) -> list[str]:
    return [f"- {'✅' if g.get('passed') else '❌'} {g.get('name')}: {g.get('detail')}" for g in gates.get("gates", [])]


def version_description(
    *,
    model_name: str,
    trigger: str | None,
    action: str,
    codes: Sequence[Mapping[str, Any]],
    metric: str,
    candidate_metrics: Mapping[str, Any],
    champion_version: str | None,
    champion_metrics: Mapping[str, Any] | None,
    gates: Mapping[str, Any],
    outcome: str,
    windows: Mapping[str, Any],
    sizes: Mapping[str, Any],
    lineage: Mapping[str, str],
    reports: Sequence[tuple[str, str]] = (),
    drift: str = "",
) -> str:
    """A version's markdown description: trigger and reason first, then champion, gates, windows, reports.

    ``windows`` has ``train``/``test``/``current``/``reference`` pairs of ISO strings (and
    ``train_weeks``, ``reference_note``); ``sizes`` the row counts; ``lineage`` hashes, contract and
    code; ``reports`` (label, location) pairs; ``outcome`` what registration did with the aliases.
    """
    lines = [first_line(trigger, codes, action), ""]
    lines.append(f"**Why.** Trigger `{trigger or 'manual'}`, decision `{action}` of the weekly run for {model_name}.")
    lines += [f"- {c.get('text')}" for c in codes[:8]]
    if len(codes) > 8:
        lines.append(f"- … and {len(codes) - 8} more (run artifact `decision.json`)")
    lines.append("")
    cand = candidate_metrics.get(metric)
    comparison = gates.get("comparison") or {}
    n_test = sizes.get("test")
    if champion_version:
        champ = (champion_metrics or {}).get(metric)
        text = (
            f"**Against the champion.** Challenged champion version {champion_version}: {metric} "
            f"{_num(cand)} (candidate) vs {_num(champ)} (champion) on the same {int(n_test or 0):,} refreshed test rows"
        )
        if comparison.get("estimate") is not None:
            conf = _finite(comparison.get("confidence")) or 0.95
            text += (
                f"; paired difference candidate − champion {comparison['estimate']:+.4f} "
                f"({conf:.0%} interval {_num(comparison.get('low'))} … {_num(comparison.get('high'))}, "
                f"{int(comparison.get('resamples') or 0):,} paired bootstrap resamples)"
            )
        lines += [text + ".", ""]
    else:
        lines += [
            f"**Against the champion.** None yet: this is the first version ({metric} {_num(cand)} on "
            f"{int(n_test or 0):,} refreshed test rows).",
            "",
        ]
    lines += [f"**Gates: {'passed' if gates.get('passed') else 'failed'}.**", *_gate_lines(gates), ""]
    lines += [f"**At registration:** {outcome}", ""]
    lines.append("**Data windows.**")
    tr, te = windows.get("train"), windows.get("test")
    if tr:
        weeks = windows.get("train_weeks")
        chosen = f"{weeks} weeks, chosen by the backtest; " if weeks else ""
        lines.append(
            f"- training: {_day(tr[0])} → {_day(tr[1])} ({chosen}{int(sizes.get('train') or 0):,} labelled rows)"
        )
    if te:
        lines.append(
            f"- test: {_day(te[0])} → {_day(te[1])} (a {int(n_test or 0):,}-row production-mirror sample of "
            f"{int(sizes.get('test_window') or 0):,} labelled rows)"
        )
    cur, ref = windows.get("current"), windows.get("reference")
    if cur:
        against = ""
        if ref:
            note = windows.get("reference_note") or "reference"
            against = f" against {note} {_day(ref[0])} → {_day(ref[1])}"
        lines.append(
            f"- drift: recent window {_day(cur[0])} → {_day(cur[1])} ({int(sizes.get('recent') or 0):,} rows)"
            f"{against} — {drift or 'not measured'}"
        )
    if lineage:
        lines.append("- lineage: " + ", ".join(f"{k} `{v}`" for k, v in lineage.items() if v))
    lines.append("")
    if reports:
        lines.append("**Reports.**")
        lines += [f"- {label}: {where}" for label, where in reports]
        lines.append("")
    lines.append(
        "Roll back with `driftline models rollback --previous --reason '...'` (moves only the `champion` alias)."
    )
    return _fit("\n".join(lines))


def _fit(text: str, limit: int = 5000) -> str:
    """Keep a description within MLflow's column size, cutting whole lines from the middle."""
    if len(text) <= limit:
        return text
    lines = text.splitlines()
    head, tail = lines[:1], lines[1:]
    while tail and len("\n".join(head + tail)) > limit - 40:
        tail.pop(len(tail) // 2)
    return "\n".join([*head, *tail[:1], "- … (cut to fit; see the run's artifacts)", *tail[1:]])[:limit]


def model_description(model_name: str, contract: Any, metric: str, aliases: Sequence[str] = ()) -> str:
    """The registered model's description: what it is, its contract, how serving and rollback work."""
    feats = contract.features
    names = ", ".join(f"`{n}` ({f.type})" for n, f in feats.items())
    keys = ", ".join(f"`{k}`" for k in contract.key_features) or "none"
    target = contract.target
    lines = [
        f"{model_name}: a tabular classifier of `{target.name}` (positive = `{target.positive}`), kept honest "
        "by driftline.",
        "",
        "**What it is.** Every week driftline refreshes a production-mirror test set, validates the data "
        "(Great Expectations and a training–serving skew check), measures drift against the champion's "
        f"reference, and retrains when a trigger fires. Each version's description says why it exists (its "
        f"first line: the trigger and the reason); candidates must beat the champion's {metric} on the same "
        "test rows (a paired bootstrap interval) to be promoted.",
        "",
        f"**Contract.** `{contract.name}` (fingerprint `{contract.fingerprint()}`): entity `{contract.entity_id}`, "
        f"event time `{contract.timestamp}`; {len(feats)} features: {names}; key features: {keys}. The contract "
        "is logged with every version (artifact `contract.yaml`).",
        "",
        f"**Serving.** Clients are served `models:/{model_name}@champion`; "
        "`@challenger` is a candidate that passed its gates and waits for the rollout "
        "(`driftline rollout start`).",
        "",
        "**Roll back.** `driftline models rollback --previous --reason '...'` (or `--to N`) moves the `champion` "
        "alias back — no retraining, no redeploy; the gateway follows within seconds. `driftline models history` "
        "lists every move.",
        "",
        "**Do not move aliases here.** MLflow's alias editor and promote button skip driftline's gates and its "
        "alias history: `driftline models list` flags such a move, and driftline records it as `external` at its "
        "next move of that alias. Use `driftline models promote` / `rollback` instead.",
    ]
    if aliases:
        lines += ["", "Aliases driftline manages: " + ", ".join(f"`{a}`" for a in aliases) + "."]
    return _fit("\n".join(lines))


# -- sizes in words ---------------------------------------------------------------------------------
def _share(x: Any) -> str:
    v = _finite(x)
    return "–" if v is None else f"{v:.1%}"


def sample_in_words(manifest: Mapping[str, Any]) -> list[str]:
    """The refreshed test set's size, its long tail and its segment match, as sentences."""
    out: list[str] = []
    size, asked, pool = manifest.get("size"), manifest.get("size_requested"), manifest.get("entities")
    if size is not None:
        whole = " (the whole window: it has fewer rows than requested)" if manifest.get("whole_pool") else ""
        out.append(
            f"The refreshed test set holds {int(size):,} rows, drawn from {int(pool or 0):,} labelled rows of the "
            f"test window ({int(asked or size):,} requested){whole}."
        )
    kept, cap = manifest.get("tail_kept"), manifest.get("tail_cap")
    if kept is not None:
        reasons = {k: v for k, v in (manifest.get("tail_by_reason") or {}).items() if v}
        why = ", ".join(f"{int(v):,} {k.replace('_', ' ')}" for k, v in reasons.items())
        if kept:
            out.append(
                f"{int(kept):,} of them are long-tail picks (at most {int(cap or kept):,}){': ' + why if why else ''}; "
                "they are weighted so the headline metrics still estimate production, and scored as their own slice."
            )
        else:
            out.append("No long-tail rows (rare categories, extreme values, unseen values) were found to add.")
    gap = manifest.get("segment_share_gap") or {}
    if gap.get("sample") is not None:
        out.append(
            f"Segment shares differ from production by {_share(gap.get('sample'))} (total variation); a uniform "
            f"sample of the same size would differ by {_share(gap.get('uniform'))}."
        )
    elif manifest.get("segment_share_gap") is not None:
        out.append("The contract names no segment column, so segment shares were not compared.")
    cov, rare = manifest.get("rare_segment_coverage") or {}, manifest.get("rare_segments")
    if rare:
        n = len(rare)
        got = round((_finite(cov.get("sample")) or 0) * n)
        uni = round((_finite(cov.get("uniform")) or 0) * n)
        out.append(f"It contains {got} of the {n} rare segments (a uniform sample: {uni} of {n}).")
    elif rare is not None:
        out.append("No segment is rare enough to need covering.")
    return out


# -- figures and the trend ----------------------------------------------------------------------
def week_figures(
    assessment: Any, metric: str, candidate: Any = None, candidate_version: str | None = None
) -> dict[str, Any]:
    """The week's numbers for the trend: champion (and candidate) metric on the test set, PSI per feature."""
    out: dict[str, Any] = {"metric": metric}
    champ = _finite((getattr(assessment, "champion_metrics", None) or {}).get(metric))
    if champ is not None:
        out["champion"] = champ
    report = getattr(assessment, "report", None)
    if report is not None:
        out["psi"] = {f.name: round(float(f.psi), 6) for f in report.features.values() if _finite(f.psi) is not None}
        out["n_recent"] = int(report.n_current)
    if candidate is not None:
        value = _finite(candidate.metrics.get(metric))
        if value is not None:
            out["candidate"] = value
    if candidate_version:
        out["candidate_version"] = str(candidate_version)
    return out


def trend(decisions: Sequence[Any], versions: Sequence[Any], metric: str) -> list[TrendPoint]:
    """One point per week, oldest first: the decision log's figures, filled in from registered versions.

    A version's week is its ``test_window`` start (the decision log's key); its candidate metric
    is run metric ``test.<metric>`` and its champion's is tag ``champion_test_metric``.
    """
    points: dict[str, dict[str, Any]] = {}
    for d in decisions:
        f = dict(getattr(d, "figures", None) or {})
        if f.get("metric") not in (None, metric):
            f = {"psi": f.get("psi", {})}
        points[d.week] = {
            "week": d.week,
            "champion_version": d.champion_version,
            "champion": _finite(f.get("champion")),
            "candidate": _finite(f.get("candidate")),
            "candidate_version": f.get("candidate_version"),
            "action": d.action,
            "psi": dict(f.get("psi") or {}),
        }
    for v in versions:
        win = _window(v.tags.get("test_window"))
        if win is None or v.tags.get("primary_metric", metric) != metric:
            continue
        p = points.setdefault(
            win[0],
            {"week": win[0], "champion_version": v.tags.get("parent_version") or None, "action": "retrain", "psi": {}},
        )
        if p.get("candidate") is None or p.get("candidate_version") in (None, v.version):
            p["candidate"] = _finite(v.metric(metric))
            p["candidate_version"] = v.version
        if p.get("champion") is None:
            p["champion"] = _finite(v.tags.get("champion_test_metric"))
    return [TrendPoint(**p) for _, p in sorted(points.items())]


# -- the reports --------------------------------------------------------------------------------
def _recent_window(window: Any, settings: Any) -> tuple[str, str]:
    start = window.as_of - pd.Timedelta(days=settings.windows.recent_days)
    return start.isoformat(), window.as_of.isoformat()


def drift_measurement(
    assessment: Any, champion: Any, candidate: Any, window: Any, contract: Any, settings: Any
) -> tuple[Any, tuple[str, str] | None, str]:
    """The drift report a version carries, its reference window and what that reference is.

    The run's own report (recent window against the champion's reference) when drift was
    measured; otherwise — the first version, or a champion whose reference no longer fits the
    contract — the recent window against the new version's own reference (its test window), so
    every version carries one. None only when there is no recent traffic.
    """
    if assessment.report is not None and champion is not None:
        ref = _window(champion.tags.get("test_window"))
        return assessment.report, ref, f"champion version {champion.version}'s reference (its test window)"
    if candidate is None or window.recent is None or len(window.recent) == 0:
        return None, None, ""
    from driftline.drift import compare
    from driftline.training import score

    frame = window.recent.copy()
    column = candidate.profile.score.column if candidate.profile.score is not None else "score"
    frame[column] = score(candidate.model.pipeline, frame, contract)
    report = compare(candidate.profile, frame, settings.drift, contract)
    split = window.split
    return (
        report,
        (split.test_start.isoformat(), split.test_end.isoformat()),
        "this version's own reference (its test window; no champion reference to compare with)",
    )


def report_context(
    *,
    settings: Any,
    window: Any,
    datasets: Any,
    assessment: Any,
    check: Any = None,
    reference: tuple[str, str] | None = None,
    reference_note: str = "",
    points: Sequence[TrendPoint] = (),
    version: str | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> ReportContext:
    """The context of a weekly run's report: model, windows and sizes, the decision taken, the trend."""
    sizes: dict[str, int] = {}
    if datasets is not None:
        sizes["refreshed test set"] = len(datasets.test)
        sizes["training window"] = len(datasets.train)
    return ReportContext(
        model_name=settings.model_name,
        action=assessment.action,
        codes=list(assessment.codes),
        trigger=assessment.trigger,
        version=version,
        reference_window=reference,
        reference_note=reference_note,
        current_window=_recent_window(window, settings),
        sizes=sizes,
        trend=list(points),
        metric=settings.gates.primary_metric,
        skew_findings=list(((check.skew or {}).get("findings") or []) if check is not None else []),
        links=list(links),
    )


def week_points(registry: Any, settings: Any, week: str, extra: Mapping[str, Any] | None = None) -> list[TrendPoint]:
    """The trend up to ``week`` from the decision log and the registered versions (best effort)."""
    from driftline.errors import DriftlineError
    from driftline.registry.history import DecisionLog

    metric = settings.gates.primary_metric
    try:
        decisions = DecisionLog(registry.store).until(settings.model_name, week)
    except DriftlineError:
        decisions = []
    try:
        versions = [v for v in registry.list_versions() if (_window(v.tags.get("test_window")) or ("",))[0] <= week]
    except DriftlineError:
        versions = []
    points = trend(decisions, versions, metric)
    if extra:
        # This week's figures before they reach the log (the candidate is not registered yet).
        now = next((p for p in points if p.week == week), None)
        base = {} if now is None else {k: getattr(now, k) for k in TrendPoint.__dataclass_fields__}
        base.update({"week": week, **{k: v for k, v in extra.items() if k in TrendPoint.__dataclass_fields__}})
        points = sorted([p for p in points if p.week != week] + [TrendPoint(**base)], key=lambda p: p.week)
    return points


@dataclass(frozen=True)
class VersionReport:
    """The drift report stored with a version: its HTML, the report it shows and that report's reference."""

    html: str
    report: Any  # driftline.drift.DriftReport | None
    reference: tuple[str, str] | None
    reference_note: str


def version_report(
    *,
    registry: Any,
    settings: Any,
    contract: Any,
    window: Any,
    datasets: Any,
    assessment: Any,
    check: Any,
    champion: Any,
    candidate: Any,
    links: Sequence[tuple[str, str]] = (),
) -> VersionReport:
    """The drift report stored with a new version: the decision that created it, windows, trend."""
    report, reference, note = drift_measurement(assessment, champion, candidate, window, contract, settings)
    metric = settings.gates.primary_metric
    week = window.split.test_start.isoformat()
    figures = week_figures(assessment, metric, candidate)
    extra = {
        "champion_version": champion.version if champion else None,
        "champion": figures.get("champion"),
        "candidate": figures.get("candidate"),
        "candidate_version": "new",
        "action": assessment.action,
        "psi": figures.get("psi") or ({f.name: f.psi for f in report.features.values()} if report else {}),
    }
    ctx = report_context(
        settings=settings,
        window=window,
        datasets=datasets,
        assessment=assessment,
        check=check,
        reference=reference,
        reference_note=note,
        points=week_points(registry, settings, week, extra),
        links=links,
    )
    return VersionReport(render_html(report, context=ctx), report, reference, note)


# -- registration: tags, description, links ----------------------------------------------------
def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (tags stay short; the description has it all)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def training_window_tag(backtest: Mapping[str, Any] | None, default_weeks: int) -> str:
    """``6 weeks (backtest mean 4w 0.612, 6w 0.634)``: the chosen training window, short."""
    bt = backtest or {}
    chosen = bt.get("chosen_train_weeks") or default_weeks
    options = bt.get("windows") or {}
    scores = [f"{w}w {_num(o.get('mean'), 3)}" for w, o in sorted(options.items(), key=lambda kv: int(kv[0]))]
    return short(f"{chosen} weeks" + (f" (backtest mean {', '.join(scores)})" if scores else ""), 250)


def alias_outcome(passed: bool, promoted: bool, held: str, trigger: str | None) -> str:
    """What registration did with the aliases, in words."""
    if promoted:
        first = " (the first version: there was no champion to roll out against)" if trigger == "bootstrap" else ""
        return f"promoted to `champion` at once{first}."
    if passed and held:
        return f"`challenger`, not promoted: {held}."
    if passed:
        return "`challenger` — passed its gates; it waits for the rollout (`driftline rollout start`)."
    return "no alias — its gates failed, so driftline will not promote it (only with `--force`, which is recorded)."


def windows_of(window: Any, settings: Any, candidate: Any, measured: VersionReport) -> dict[str, Any]:
    """The windows a version's description names: training (as chosen), test, drift current and reference."""
    split = window.split
    weeks = (getattr(candidate, "training_window", None) or {}).get("train_weeks")
    train_start = split.test_start - pd.Timedelta(weeks=int(weeks)) if weeks else split.train_start
    out: dict[str, Any] = {
        "train": (train_start.isoformat(), split.train_end.isoformat()),
        "test": (split.test_start.isoformat(), split.test_end.isoformat()),
        "current": _recent_window(window, settings),
        "train_weeks": weeks,
    }
    if measured.reference is not None:
        out["reference"] = measured.reference
        out["reference_note"] = measured.reference_note
    return out


def sizes_of(datasets: Any, window: Any, candidate: Any) -> dict[str, int]:
    """Row counts a version's description names."""
    pool = datasets.test_window if datasets.test_window is not None else datasets.test
    return {
        "test": len(datasets.test),
        "test_window": len(pool),
        "train": int((getattr(candidate, "training_window", None) or {}).get("rows", len(datasets.train))),
        "recent": len(window.recent),
    }


def lineage_of(datasets: Any, contract: Any, code: str) -> dict[str, str]:
    """Hashes, contract and code of a version, short."""
    return {
        "train hash": str(datasets.train_hash)[:12],
        "test hash": str(datasets.test_hash)[:12],
        "contract": f"{contract.name} {contract.fingerprint()}",
        "code": code,
    }


def data_docs_of(check: Any) -> dict[str, str]:
    """The Data Docs pages a run's validation wrote, by dataset (empty when none were written)."""
    out: dict[str, str] = {}
    for name, result in (getattr(check, "validation", None) or {}).items():
        page = (result or {}).get("docs_page") or (result or {}).get("docs")
        if page:
            out[name] = str(page)
    return out


def describe_registration(
    registry: Any,
    *,
    settings: Any,
    contract: Any,
    version: str,
    run_id: str,
    created: bool,
    html: str,
    description: Callable[[str, list[tuple[str, str]]], str],
    outcome: str,
    data_docs: Mapping[str, str],
) -> dict[str, str]:
    """Put a version's story in place: the report's local copy, the version's and the model's descriptions.

    ``description(outcome, reports)`` renders the version's markdown. It is written for a new
    version, and for one found again by a rerun whose description is missing (a crash between
    registering and describing); an existing description is the story of the run that made it
    and stays. Returns the links for the run summary.
    """
    from driftline import io

    copy = io.write_text(
        settings.output_location("reports", settings.model_name, f"version-{version}-drift.html"), html
    )
    reports: list[tuple[str, str]] = [
        ("drift report (the decision, windows, weekly trend)", f"run artifact `drift_report.html`; copy `{copy}`"),
        (
            "gates, validation, decision, backtest",
            "run artifacts `gates.json`, `validation.json`, `decision.json`, `backtest.json`",
        ),
    ]
    reports += [(f"Data Docs ({name} data)", f"`{page}`") for name, page in data_docs.items()]
    ui = registry.ui_url(version)
    if ui:
        reports.append(("this page", ui))
    if created or not registry.version_description(version).strip():
        registry.describe_version(version, description(outcome, reports))
        registry.describe_model(
            model_description(settings.model_name, contract, settings.gates.primary_metric, registry.aliases)
        )
    links = {
        "drift_report": str(copy),
        "model_uri": f"models:/{settings.model_name}/{version}",
        "run_id": run_id,
        "mlflow_ui": ui or "",
    }
    links.update({f"data_docs.{k}": v for k, v in data_docs.items()})
    return links


def publish_week(registry: Any, settings: Any, parts: Mapping[str, Any]) -> dict[str, str]:
    """Record the week's figures in the decision log and make sure the week has a drift report on disk.

    ``parts`` are the pipeline's step results (:class:`driftline.pipeline.Outcome`'s ``parts``).
    A week that registered a version already has its report (written with the version, see
    :func:`driftline.weekly.register_candidate`); any other week that reached the drift step gets
    ``<reports>/<model>/week-<date>-drift.html``. Returns the paths (``drift_report``) for the
    run summary; nothing for a run that stopped before the drift step.
    """
    assessment, window = parts.get("assessment"), parts.get("window")
    if assessment is None or window is None:
        return {}
    from driftline.errors import DriftlineError
    from driftline.registry.history import DecisionLog

    metric = settings.gates.primary_metric
    registration = parts.get("registration")
    version = registration.version if registration is not None else None
    week = window.split.test_start.isoformat()
    log = DecisionLog(registry.store)
    log.annotate(settings.model_name, week, week_figures(assessment, metric, parts.get("candidate"), version))
    written = dict(getattr(registration, "links", None) or {})
    if written.get("drift_report"):
        return {"drift_report": written["drift_report"]}
    recorded = next((d for d in log.until(settings.model_name, week, limit=1) if d.week == week), None)
    reference, note = None, ""
    if recorded is not None and recorded.champion_version:
        try:
            reference = _window(registry.get(recorded.champion_version).tags.get("test_window"))
            note = f"champion version {recorded.champion_version}'s reference (its test window)"
        except DriftlineError:
            reference = None
    ctx = report_context(
        settings=settings,
        window=window,
        datasets=parts.get("datasets"),
        assessment=assessment,
        check=parts.get("check"),
        reference=reference,
        reference_note=note,
        points=week_points(registry, settings, week),
        version=version,
    )
    from driftline import io

    path = settings.output_location("reports", settings.model_name, f"week-{_day(week)}-drift.html")
    return {"drift_report": io.write_text(path, render_html(assessment.report, context=ctx))}


__all__ = [
    "ReportContext",
    "TrendPoint",
    "VersionReport",
    "alias_outcome",
    "decision_state",
    "describe_registration",
    "drift_measurement",
    "drift_tag",
    "first_line",
    "model_description",
    "next_steps",
    "publish_week",
    "sample_in_words",
    "trend",
    "version_description",
    "version_report",
    "week_figures",
]
