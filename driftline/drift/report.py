"""Self-contained HTML drift report: one page, inline CSS and inline SVG charts, no external assets.

Per feature (sorted by severity, then PSI) it shows the reference vs current histogram on the
profile's buckets, PSI / KL / JS, the effective thresholds and how they were found, the secondary
test, missing and unseen shares; above that the decision with its reasons, prediction and
performance drift, and segments. The JSON twin is :meth:`DriftReport.to_dict`.

With a :class:`ReportContext` the page is the model's: titled by the model (and version), the
reference and current windows with their dates and sizes, the decision the run took (its state
coloured by meaning: grey for no verdict, never a green "none"), what to do next from the reason
codes, and a trend panel of the primary metric per week and the alerting features' PSI over time.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.drift.compare import DriftReport, FeatureDrift
from driftline.values import finite as _finite_or_none

COLORS = {"alert": "#c62828", "warn": "#e08a00", "stable": "#2e7d32", "insufficient_data": "#757575"}
REF_COLOR = "#7b8fc7"
CUR_COLOR = "#f08a4b"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;
  color:#1d1d1f;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 10px}h3{font-size:16px;margin:0}
.meta{color:#555;font-size:13px}
.banner{border-radius:8px;padding:14px 18px;color:#fff;margin:18px 0}
.banner b{font-size:18px;text-transform:uppercase;letter-spacing:.04em}
.banner ul{margin:8px 0 0 18px;padding:0}
.chips span{display:inline-block;border-radius:12px;padding:3px 10px;margin-right:6px;color:#fff;font-size:13px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #e4e6ea;text-align:right;white-space:nowrap}
th{background:#eef0f4;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;color:#fff;font-size:12px}
.key{display:inline-block;border:1px solid #555;border-radius:4px;padding:0 5px;font-size:11px;
  margin-left:6px;color:#555}
.card{background:#fff;border:1px solid #e4e6ea;border-left:5px solid #999;border-radius:6px;
  padding:12px 16px;margin:12px 0}
.card .nums{font-size:13px;color:#333;margin:6px 0}
.note{font-size:13px;color:#444;background:#fff;border:1px solid #e4e6ea;border-radius:6px;padding:10px 14px}
a{color:#1f4fa3;text-decoration:none}
.scroll{overflow-x:auto}
.windows{font-size:14px;margin:8px 0;padding-left:18px}
.banner .state{font-size:14px;opacity:.9}
.next li{margin:4px 0}
details{margin:8px 0}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.1%}" if abs(x) >= 0.001 or x == 0 else f"{x:.3%}"


def _p(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}"


def _badge(sev: str) -> str:
    return f'<span class="badge" style="background:{COLORS.get(sev, "#999")}">{_e(sev.replace("_", " "))}</span>'


def svg_bars(
    labels: list[str], reference: list[float], current: list[float], width: int = 720, height: int = 246
) -> str:
    """Grouped bar chart (reference vs current share per bucket) as an inline SVG string.

    Buckets empty on both sides (typically an unused ``unseen`` or ``missing``) are left out.
    """
    rows = [(lab, r, c) for lab, r, c in zip(labels, reference, current, strict=True) if r > 0 or c > 0]
    if not rows:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    left, right, top, bottom = 58, 10, 26, 80
    pw, ph = width - left - right, height - top - bottom
    top_val = max(max(r, c) for _, r, c in rows) or 1.0
    step = 0.05 if top_val <= 0.25 else 0.1 if top_val <= 0.6 else 0.2
    ymax = step * (int(top_val / step) + 1)
    group = pw / len(rows)
    bar = max(1.0, group * 0.38)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" font-family="system-ui,sans-serif" font-size="11">'
    ]
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = top + ph - tick / ymax * ph
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{tick:.0%}</text>')
        tick += step
    for i, (lab, r, c) in enumerate(rows):
        x0 = left + i * group + (group - 2 * bar) / 2
        for j, (val, color, who) in enumerate(((r, REF_COLOR, "reference"), (c, CUR_COLOR, "current"))):
            h = val / ymax * ph
            out.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}">'
                f"<title>{_e(lab)} · {who}: {val:.2%}</title></rect>"
            )
        short = lab if len(lab) <= 16 else lab[:15] + "…"
        cx = left + (i + 0.5) * group
        out.append(
            f'<text x="{cx:.1f}" y="{top + ph + 12}" text-anchor="end" fill="#333" '
            f'transform="rotate(-40 {cx:.1f} {top + ph + 12})">{_e(short)}</text>'
        )
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>')
    lx = width - right - 190
    out.append(f'<rect x="{lx}" y="6" width="11" height="11" fill="{REF_COLOR}"/>')
    out.append(f'<text x="{lx + 15}" y="15" fill="#333">reference</text>')
    out.append(f'<rect x="{lx + 90}" y="6" width="11" height="11" fill="{CUR_COLOR}"/>')
    out.append(f'<text x="{lx + 105}" y="15" fill="#333">current</text>')
    out.append("</svg>")
    return "".join(out)


def _threshold_text(f: FeatureDrift) -> str:
    b = f.band
    src = (
        "configured"
        if b.method == "configured"
        else "raised for sample size"
        if b.warn > b.configured_warn
        else "configured (checked by simulation)"
    )
    return f"warn ≥ {b.warn:.3f}, alert &gt; {b.alert:.3f} ({src})"


def _card(f: FeatureDrift) -> str:
    key = '<span class="key">key</span>' if f.key else ""
    share = ""
    if f.unseen_share is not None:
        share = f" · unseen {_pct(f.unseen_share)}"
    if f.out_of_range_share is not None:
        share = f" · outside reference range {_pct(f.out_of_range_share)}"
    unseen = ""
    if f.unseen_values:
        items = ", ".join(f"{_e(k)} ({v})" for k, v in list(f.unseen_values.items())[:10])
        unseen = f'<div class="nums">Unseen values: {items}</div>'
    return (
        f'<div class="card" id="f-{_e(f.name)}" style="border-left-color:{COLORS.get(f.severity, "#999")}">'
        f"<h3>{_e(f.name)} {key} {_badge(f.severity)} <span class='meta'>{_e(f.kind)}</span></h3>"
        f'<div class="nums">PSI <b>{f.psi:.4f}</b> · KL {f.kl:.4f} · JS {f.js:.4f} · '
        f"{_threshold_text(f)} · {_e(f.test)} p = {_p(f.p_value)} · "
        f"missing {_pct(f.missing_share)}{share} · n = {f.n_current:,} (reference {f.n_reference:,})</div>"
        f"{unseen}{svg_bars(f.labels, f.reference, f.current)}</div>"
    )


def _feature_table(feats: list[FeatureDrift]) -> str:
    head = (
        "<tr><th>feature</th><th>type</th><th>PSI</th><th>KL</th><th>JS</th><th>warn / alert in force</th>"
        "<th>test p</th><th>missing</th><th>unseen / out of range</th><th>rows</th><th>severity</th></tr>"
    )
    rows = []
    for f in feats:
        other = f.unseen_share if f.unseen_share is not None else f.out_of_range_share
        key = '<span class="key">key</span>' if f.key else ""
        rows.append(
            f'<tr><td><a href="#f-{_e(f.name)}">{_e(f.name)}</a>{key}</td><td>{_e(f.kind)}</td>'
            f"<td><b>{f.psi:.4f}</b></td><td>{f.kl:.4f}</td><td>{f.js:.4f}</td>"
            f"<td>{f.band.warn:.3f} / {f.band.alert:.3f}</td><td>{_e(f.test)} {_p(f.p_value)}</td>"
            f"<td>{_pct(f.missing_share)}</td><td>{_pct(other)}</td><td>{f.n_current:,}</td><td>{_badge(f.severity)}</td></tr>"
        )
    return f"<div class='scroll'><table>{head}{''.join(rows)}</table></div>"


def _prediction(report: DriftReport) -> str:
    parts: list[str] = []
    if report.score is not None:
        parts.append(_card(report.score))
    rows = []
    ppr = report.predicted_positive_rate
    if ppr is not None:
        rows.append(("predicted positive rate (score ≥ {:g})".format(ppr["threshold"]), ppr))
    if report.label_rate is not None:
        rows.append((f"label base rate ({report.label_rate['n_labelled']:,} labelled)", report.label_rate))
    if report.performance is not None:
        for k, v in report.performance["change"].items():
            if k not in ("base_rate", "predicted_positive_rate"):  # shown above for the whole window
                rows.append((f"{k} (labelled rows)", v))
    if rows:
        body = "".join(
            f"<tr><td>{_e(name)}</td><td>{_fmt(v.get('reference'))}</td><td>{_fmt(v.get('current'))}</td>"
            f"<td>{_fmt(v.get('absolute'))}</td><td>{_pct(v.get('relative'))}</td></tr>"
            for name, v in rows
        )
        parts.append(
            "<table><tr><th>measure</th><th>reference</th><th>current</th><th>absolute change</th>"
            f"<th>relative change</th></tr>{body}</table>"
        )
    if not parts:
        return '<p class="meta">No model score in this window.</p>'
    return "".join(parts)


def _segments(report: DriftReport) -> str:
    seg = report.segments
    if not seg or not seg.get("values"):
        return '<p class="meta">No segment had enough rows on both sides.</p>'
    order = {"alert": 0, "warn": 1, "insufficient_data": 2, "stable": 3}
    items = sorted(seg["values"].items(), key=lambda kv: (order.get(kv[1]["worst"], 9), kv[0]))
    rows = []
    for value, s in items:
        hot = [f"{_e(n)} ({d['psi']:.3f})" for n, d in s["features"].items() if d["severity"] in ("warn", "alert")]
        score = s.get("score")
        rows.append(
            f"<tr><td>{_e(value)}</td><td>{s['n_reference']:,}</td><td>{s['n_current']:,}</td>"
            f"<td>{_badge(s['worst'])}</td><td style='text-align:left;white-space:normal'>{', '.join(hot) or '–'}</td>"
            f"<td>{_badge(score['severity']) if score else '–'}</td></tr>"
        )
    skipped = seg.get("skipped", {})
    note = (
        f'<p class="meta">{len(skipped)} segment value(s) below {seg["min_rows"]} rows not compared.</p>'
        if skipped
        else ""
    )
    return (
        f"<p class='meta'>Segment column <b>{_e(seg['column'])}</b>, "
        f"segments with ≥ {seg['min_rows']} rows on both sides.</p>"
        "<table><tr><th>value</th><th>reference rows</th><th>current rows</th><th>worst</th>"
        f"<th style='text-align:left'>features at warn or alert (PSI)</th><th>score</th></tr>"
        f"{''.join(rows)}</table>{note}"
    )


# -- the decision, its state and what to do next ------------------------------------------------
STATE_COLORS = {
    "retrain": "#c62828",
    "investigate": "#e08a00",
    "stable": "#2e7d32",
    "insufficient data": "#757575",
    "not measured": "#757575",
    "first version": "#3f5e8c",
}
"""Banner colour per state: red acts, amber looks, green is a measured all-clear, grey is no verdict."""

_NO_VERDICT = {
    "insufficient_data": "insufficient data",
    "drift_not_measured": "not measured",
    "metric_insufficient_labels": "insufficient data",
}


def decision_state(action: str, codes: Sequence[Mapping[str, Any]] = (), trigger: str | None = None) -> str:
    """The state a reader should see: ``retrain``, ``investigate``, ``stable``, ``first version``,
    ``insufficient data`` or ``not measured`` (a ``none`` without a measured all-clear is not green)."""
    names = [str(c.get("code")) for c in codes]
    if action == "retrain":
        return "first version" if trigger == "bootstrap" or "no_champion" in names else "retrain"
    if action == "investigate":
        return "investigate"
    if "stable" in names:
        return "stable"
    for code in names:
        if code in _NO_VERDICT:
            return _NO_VERDICT[code]
    return "stable" if names else "not measured"


def next_steps(
    codes: Sequence[Mapping[str, Any]], skew_findings: Sequence[Mapping[str, Any]] = (), action: str | None = None
) -> list[str]:
    """What to do next, one line per distinct step, derived from the structured reason codes."""
    out: list[str] = []

    def add(line: str) -> None:
        if line not in out:
            out.append(line)

    mapped = [f for f in skew_findings if f.get("mapping")]
    if mapped:
        names = ", ".join(sorted({str(f.get("feature")) for f in mapped}))
        add(
            f"Apply the suggested serving mapping for {names}: review it with `driftline skew`, then "
            "`driftline skew --apply` writes it to the contract (the fix is the mapping, not a new model)."
        )
    for c in codes:
        code, feature = str(c.get("code")), c.get("feature")
        if code in ("key_feature_alert", "feature_alert", "feature_warn") and feature:
            add(
                f"Investigate feature '{feature}': compare its reference and current histograms below, check the "
                "upstream source and the serving mapping for it."
            )
        elif code in ("score_alert", "score_warn"):
            add("Investigate the model score's shift: look at which segments moved and whether the inputs explain it.")
        elif code == "segment_alert":
            add(f"Investigate segment(s) with features at alert ({c.get('text', '')}).")
        elif code in ("metric_drop", "metric_cusum", "metric_drop_within_noise") and c.get("level") != "none":
            add(
                "Check the champion's metric on the newest labelled weeks; if the drop holds, retrain "
                "(`driftline run refresh-and-retrain --force-retrain`) and roll the candidate out."
            )
        elif code in ("insufficient_data", "metric_insufficient_labels"):
            add(
                "Wait for more traffic or labels (or widen the window): there is not enough data for a verdict, "
                "which is not the same as no drift."
            )
        elif code == "drift_not_measured":
            add("Drift was not measured: make sure traffic is ingested and the champion's reference fits the contract.")
    if action == "retrain":
        add(
            "A candidate was trained: read its gates in the MLflow version's description; a passing candidate "
            "waits as challenger for `driftline rollout start`, and `driftline models rollback` undoes a promotion."
        )
    return out


# -- the trend panel ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendPoint:
    """One week of the model's history: the champion's (and a candidate's) primary metric, features' PSI."""

    week: str  # the test window's start, ISO
    champion_version: str | None = None
    champion: float | None = None  # the champion's primary metric on that week's refreshed test set
    candidate: float | None = None
    candidate_version: str | None = None
    action: str = ""
    psi: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportContext:
    """What a report knows beyond the drift numbers: whose it is, which windows, the decision that stands.

    ``action``/``codes``/``trigger`` are the decision the run took (the trigger policy's, after metric
    and escalation rules), which replaces the drift-only decision stored in the report. Windows are
    ``(start, end)`` ISO strings; ``sizes`` maps a label to a row count; ``links`` are (label,
    location) pairs shown as text (the page itself loads nothing).
    """

    model_name: str
    action: str | None = None
    codes: Sequence[Mapping[str, Any]] = ()
    trigger: str | None = None
    version: str | None = None
    reference_window: tuple[str, str] | None = None
    reference_note: str = ""
    current_window: tuple[str, str] | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)
    trend: Sequence[TrendPoint] = ()
    metric: str = "average_precision"
    skew_findings: Sequence[Mapping[str, Any]] = ()
    links: Sequence[tuple[str, str]] = ()
    note: str = ""


CHAMPION_COLOR = "#1f4fa3"
CANDIDATE_COLOR = "#e0561b"
SERIES = ("#6a3d9a", "#1b9e77", "#d95f02", "#e7298a", "#66a61e", "#a6761d")


def _day(iso: str | None) -> str:
    return "–" if not iso else str(iso)[:10]


def _axis(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    span = hi - lo
    return lo - span * pad, hi + span * pad


def svg_lines(
    weeks: list[str],
    series: list[tuple[str, str, list[float | None]]],
    *,
    bands: Sequence[tuple[str, float]] = (),
    width: int = 720,
    height: int = 200,
    y_label: str = "",
) -> str:
    """A small line chart (one x position per week) as inline SVG; ``series`` = (name, colour, values).

    A missing value breaks its line; every drawn point has a ``<title>`` with its exact value.
    """
    values = [v for _, _, vs in series for v in vs if v is not None] + [b for _, b in bands]
    if not weeks or not values:
        return '<p class="meta">No earlier weeks recorded yet.</p>'
    left, right, top, bottom = 58, 130, 14, 34
    pw, ph = width - left - right, height - top - bottom
    lo, hi = _axis(values)

    def x(i: int) -> float:
        return left + (pw * i / (len(weeks) - 1) if len(weeks) > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" font-family="system-ui,sans-serif" font-size="11">'
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v:.3f}</text>')
    if y_label:
        out.append(
            f'<text x="12" y="{top + ph / 2:.1f}" fill="#555" transform="rotate(-90 12 {top + ph / 2:.1f})"'
            f' text-anchor="middle">{_e(y_label)}</text>'
        )
    step = max(1, len(weeks) // 8)
    for i, w in enumerate(weeks):
        if i % step == 0 or i == len(weeks) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#333">{_e(_day(w)[5:])}</text>'
            )
    for name, b in bands:
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(b):.1f}" y2="{y(b):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
            f'<text x="{left + 4}" y="{y(b) - 3:.1f}" fill="#777">{_e(name)} {b:g}</text>'
        )
    for k, (name, color, vs) in enumerate(series):
        path: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(path) > 1:
                    out.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
                path = []
                continue
            path.append(f"{x(i):.1f},{y(v):.1f}")
        if len(path) > 1:
            out.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(vs):
            if v is not None:
                out.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.2" fill="{color}">'
                    f"<title>{_e(name)} · week of {_e(_day(weeks[i]))}: {v:.4f}</title></circle>"
                )
        ly = top + 12 + 16 * k
        out.append(f'<rect x="{left + pw + 8}" y="{ly - 9}" width="11" height="11" fill="{color}"/>')
        out.append(f'<text x="{left + pw + 23}" y="{ly}" fill="#333">{_e(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def alerting_features(report: DriftReport | None, codes: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Features at warn or alert in the report, plus any a reason code names (in that order)."""
    names: list[str] = []
    if report is not None:
        names += [f.name for f in report.by_severity() if f.severity in ("warn", "alert")]
    for c in codes:
        f = c.get("feature")
        if f and str(c.get("code", "")).startswith(("feature_", "key_feature")) and f not in names:
            names.append(str(f))
    return names


def _trend(ctx: ReportContext, report: DriftReport | None) -> str:
    points = sorted(ctx.trend, key=lambda p: p.week)
    if not points:
        return '<p class="meta">No weekly history recorded for this model yet.</p>'
    weeks = [p.week for p in points]
    metric = svg_lines(
        weeks,
        [
            ("champion", CHAMPION_COLOR, [p.champion for p in points]),
            ("candidate", CANDIDATE_COLOR, [p.candidate for p in points]),
        ],
        y_label=ctx.metric,
    )
    feats = alerting_features(report, ctx.codes)[: len(SERIES)]
    psi_part = '<p class="meta">No feature is at warn or alert this week.</p>'
    if feats:
        bands: list[tuple[str, float]] = []
        if report is not None and feats[0] in report.features:
            b = report.features[feats[0]].band
            bands = [("warn", round(b.warn, 3)), ("alert", round(b.alert, 3))]
        series = [(f, SERIES[i], [_finite_or_none(p.psi.get(f)) for p in points]) for i, f in enumerate(feats)]
        psi_part = svg_lines(weeks, series, bands=bands, y_label="PSI")
    rows = "".join(
        f"<tr><td>{_e(_day(p.week))}</td><td>{_e(p.action or '–')}</td><td>{_e(p.champion_version or '–')}</td>"
        f"<td>{_fmt(p.champion)}</td><td>{_e(p.candidate_version or '–')}</td><td>{_fmt(p.candidate)}</td></tr>"
        for p in points
    )
    return (
        f"<h3>{_e(ctx.metric)} per week (on each week's refreshed test set)</h3>{metric}"
        f"<h3>PSI over time of the features at warn or alert</h3>{psi_part}"
        "<details><summary class='meta'>the numbers</summary><table><tr><th>week</th><th>decision</th>"
        f"<th>champion</th><th>{_e(ctx.metric)}</th><th>candidate</th><th>{_e(ctx.metric)}</th></tr>{rows}</table>"
        "</details>"
    )


def _windows(ctx: ReportContext | None, report: DriftReport | None) -> str:
    items: list[str] = []
    if ctx is not None and ctx.reference_window:
        a, b = ctx.reference_window
        note = f" ({_e(ctx.reference_note)})" if ctx.reference_note else ""
        n = f", {report.n_reference:,} rows" if report is not None else ""
        items.append(f"<li><b>reference</b> {_e(_day(a))} → {_e(_day(b))}{note}{n}</li>")
    elif report is not None:
        items.append(f"<li><b>reference</b> {report.n_reference:,} rows</li>")
    if ctx is not None and ctx.current_window:
        a, b = ctx.current_window
        n = f", {report.n_current:,} rows" if report is not None else ""
        items.append(f"<li><b>current</b> {_e(_day(a))} → {_e(_day(b))}{n}</li>")
    elif report is not None:
        items.append(f"<li><b>current</b> {report.n_current:,} rows</li>")
    for label, n in ctx.sizes.items() if ctx is not None else ():
        items.append(f"<li><b>{_e(label)}</b> {int(n):,} rows</li>")
    return f"<ul class='windows'>{''.join(items)}</ul>" if items else ""


def render_html(report: DriftReport | None, title: str | None = None, *, context: ReportContext | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG; no scripts, no external assets).

    With ``context`` the page is titled by the model, shows the windows' dates and sizes, the
    decision the run took (not only the drift rules'), a trend panel and what to do next.
    ``report`` may be None when drift was not measured (the decision and trend still show).
    """
    ctx = context
    d = report.decision if report is not None else None
    if ctx is not None and ctx.action is not None:
        action, codes, trigger = ctx.action, list(ctx.codes), ctx.trigger
    else:
        action = d.action if d is not None else "none"
        codes = [r.to_dict() for r in d.codes] if d is not None else []
        trigger = None
    reasons = [str(c.get("text", "")) for c in codes] or (list(d.reasons) if d is not None else [])
    state = decision_state(action, codes, trigger)
    steps = next_steps(codes, ctx.skew_findings if ctx is not None else (), action)
    who = ctx.model_name if ctx is not None else (report.contract_name if report is not None else "model")
    version = f" · version {ctx.version}" if ctx is not None and ctx.version else ""
    title = title or f"Drift report · {who}{version}"
    head = f"decision: {action}" + (f" · trigger {trigger}" if trigger else "")
    contract = f"contract {_e(report.contract_name)} ({_e(report.contract_fingerprint)})" if report is not None else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f"<div class='meta'>{contract}</div>",
        _windows(ctx, report),
        f"<div class='banner' data-state='{_e(state)}' style='background:{STATE_COLORS.get(state, '#555')}'>"
        f"<b>{_e(head)}</b>{'' if state == action else f' <span class=state>({_e(state)})</span>'}"
        f"<ul>{''.join(f'<li>{_e(r)}</li>' for r in reasons)}</ul></div>",
    ]
    if steps:
        parts.append(f"<h2>What to do next</h2><ol class='next'>{''.join(f'<li>{_e(s)}</li>' for s in steps)}</ol>")
    if ctx is not None:
        parts.append(f"<h2>Trend</h2>{_trend(ctx, report)}")
    if report is not None:
        counts = report.severity_counts()
        chips = "".join(
            f'<span style="background:{COLORS[k]}">{v} {_e(k.replace("_", " "))}</span>' for k, v in counts.items() if v
        )
        feats = report.by_severity()
        parts += [
            f"<div class='chips'>{chips}</div>",
            f"<h2>Features</h2>{_feature_table(feats)}",
            f"<h2>Prediction and performance</h2>{_prediction(report)}",
            f"<h2>Segments</h2>{_segments(report)}",
            f"<h2>Per feature</h2>{''.join(_card(f) for f in feats)}",
            f"<h2>Method</h2><div class='note'><p>{_e(report.method())}</p><p>{METHOD}</p></div>",
        ]
    else:
        parts.append("<p class='note'>Drift was not measured for this window (see the decision above).</p>")
    if ctx is not None and (ctx.links or ctx.note):
        items = "".join(f"<li>{_e(label)}: <code>{_e(where)}</code></li>" for label, where in ctx.links)
        note = f"<p>{_e(ctx.note)}</p>" if ctx.note else ""
        parts.append(f"<h2>Related</h2><div class='note'>{note}<ul>{items}</ul></div>")
    parts.append("</main></body></html>")
    return "".join(parts)


METHOD = (
    "PSI = Σ (cur − ref)·ln(cur/ref); KL = Σ cur·ln(cur/ref) (current ‖ reference); JS = Jensen–Shannon "
    "distance, base 2, in [0, 1]. All three on the same buckets: numeric features on quantile bins cut from the "
    "reference only, plus a missing bucket; categorical features on the reference vocabulary plus unseen and "
    "missing buckets. Buckets empty on both sides are dropped; an empty bucket on one side gets the smoothing "
    "share and each side is renormalised. Tests: KS on the ordered bins for numeric features (chi-squared "
    "homogeneity test for categorical ones); with large windows tiny differences are significant, so severity "
    "follows PSI, not p-values."
)
