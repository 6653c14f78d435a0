"""Self-contained HTML drift report: one page, inline CSS and inline SVG charts, no external assets.

Per feature (sorted by severity, then PSI) it shows the reference vs current histogram on the
profile's buckets, PSI / KL / JS, the effective thresholds and how they were found, the secondary
test, missing and unseen shares; above that the decision with its reasons, prediction and
performance drift, and segments. The JSON twin is :meth:`DriftReport.to_dict`.
"""

from __future__ import annotations

import html
from typing import Any

from driftline.drift.compare import DriftReport, FeatureDrift

COLORS = {"alert": "#c62828", "warn": "#e08a00", "stable": "#2e7d32", "insufficient_data": "#757575"}
ACTION_COLORS = {"retrain": "#c62828", "investigate": "#e08a00", "none": "#2e7d32"}
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


def render_html(report: DriftReport, title: str | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG; no scripts, no external assets)."""
    d = report.decision
    action = d.action if d is not None else "none"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in (d.reasons if d is not None else []))
    counts = report.severity_counts()
    chips = "".join(
        f'<span style="background:{COLORS[k]}">{v} {_e(k.replace("_", " "))}</span>' for k, v in counts.items() if v
    )
    feats = report.by_severity()
    title = title or f"Drift report · {report.contract_name}"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f"<h1>{_e(title)}</h1>"
        f"<div class='meta'>contract {_e(report.contract_name)} ({_e(report.contract_fingerprint)}) · "
        f"reference {report.n_reference:,} rows · current {report.n_current:,} rows</div>"
        f"<div class='banner' style='background:{ACTION_COLORS.get(action, '#555')}'><b>decision: {_e(action)}</b>"
        f"<ul>{reasons}</ul></div>"
        f"<div class='chips'>{chips}</div>"
        f"<h2>Features</h2>{_feature_table(feats)}"
        f"<h2>Prediction and performance</h2>{_prediction(report)}"
        f"<h2>Segments</h2>{_segments(report)}"
        f"<h2>Per feature</h2>{''.join(_card(f) for f in feats)}"
        f"<h2>Method</h2><div class='note'><p>{_e(report.method())}</p>"
        "<p>PSI = Σ (cur − ref)·ln(cur/ref); KL = Σ cur·ln(cur/ref) (current ‖ reference); JS = Jensen–Shannon "
        "distance, base 2, in [0, 1]. All three on the same buckets: numeric features on quantile bins cut from the "
        "reference only, plus a missing bucket; categorical features on the reference vocabulary plus unseen and "
        "missing buckets. Buckets empty on both sides are dropped; an empty bucket on one side gets the smoothing "
        "share and each side is renormalised. Tests: KS on the ordered bins for numeric features (chi-squared "
        "homogeneity test for categorical ones); with large windows tiny differences are significant, so severity "
        "follows PSI, not p-values.</p></div>"
        "</main></body></html>"
    )
