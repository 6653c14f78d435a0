"""HTML report: self-contained, sorted by severity, one chart per feature, text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.drift import compare, fit_profile, render_html
from driftline.settings import DriftSettings


class Collect(HTMLParser):
    """Collect tags, their attributes and the card order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def build(tiny_contract: Contract) -> tuple[str, object]:
    rng = np.random.default_rng(0)
    n = 2000

    def frame(shift: float, country_noise: bool) -> pd.DataFrame:
        country = rng.choice(["US", "GB", "DE"], n).astype(object)
        if country_noise:
            country[:50] = "<script>alert(1)</script>"
        return pd.DataFrame(
            {
                "country": country,
                "plan": rng.choice(["free", "pro"], n),
                "tenure_days": rng.exponential(300, n) * (1 + shift),
                "score_hint": rng.normal(size=n),
                "auto_renew": rng.random(n) < 0.5,
                "score": rng.random(n),
            }
        )

    s = DriftSettings(segment_min_rows=100)
    p = fit_profile(frame(0, False), tiny_contract, s, score_column="score")
    r = compare(p, frame(0.8, True), s)
    return render_html(r), r


def test_html_is_self_contained_and_sorted(tiny_contract: Contract) -> None:
    html, report = build(tiny_contract)
    parser = Collect()
    parser.feed(html)
    tags = parser.tags
    # No scripts, no external resources: every src/href is a local anchor, SVG namespaces aside.
    assert not any(t == "script" for t, _ in tags)
    for t, a in tags:
        for attr in ("src", "href"):
            v = a.get(attr)
            assert v is None or v.startswith("#"), (t, attr, v)
    assert not re.search(r"url\(|@import|<link", html)
    # One card with an inline SVG per feature, plus the score; ordered alert first.
    cards = [a["id"][2:] for t, a in tags if t == "div" and (a.get("id") or "").startswith("f-")]
    assert sorted(cards) == sorted([*report.features, "score"])
    feature_cards = [c for c in cards if c != "score"]
    assert feature_cards == [f.name for f in report.by_severity()]
    assert report.features[feature_cards[0]].severity == "alert"
    assert sum(1 for t, _ in tags if t == "svg") == len(cards)
    # The decision, the method and the effective thresholds are on the page.
    assert f"decision: {report.decision.action}" in html
    assert "Monte Carlo" in html and "warn / alert in force" in html
    # User values are escaped.
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


# -- the report in context: model, windows, the decision taken, trend, next steps -------------------
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _context(**changes):
    from driftline.drift.report import ReportContext, TrendPoint

    base = {
        "model_name": "churn-weekly",
        "action": "retrain",
        "trigger": "performance",
        "codes": [
            {"code": "metric_drop", "level": "retrain", "feature": "average_precision", "text": "AP dropped 12.0%"},
            {"code": "feature_warn", "level": "investigate", "feature": "plan", "text": "feature 'plan' at warn"},
        ],
        "version": "7",
        "reference_window": ("2026-02-02T00:00:00", "2026-02-09T00:00:00"),
        "reference_note": "champion version 6's reference",
        "current_window": ("2026-03-02T03:00:00", "2026-03-09T03:00:00"),
        "sizes": {"refreshed test set": 2500},
        "trend": [
            TrendPoint("2026-02-16T00:00:00", "6", 0.6123, None, None, "none", {"tenure_days": 0.05}),
            TrendPoint("2026-02-23T00:00:00", "6", 0.5871, 0.6342, "7", "retrain", {"tenure_days": 0.31}),
        ],
        "skew_findings": [{"feature": "country", "mapping": {"U.S.": "US"}}],
    }
    base.update(changes)
    return ReportContext(**base)


def test_report_in_context_names_model_windows_and_the_decision_taken(tiny_contract: Contract) -> None:
    _, report = build(tiny_contract)
    ctx = _context()
    page = render_html(report, context=ctx)
    assert "<title>Drift report · churn-weekly · version 7</title>" in page
    assert "<h1>Drift report · churn-weekly · version 7</h1>" in page
    assert report.contract_name != "churn-weekly"
    # Window dates and sizes, each next to its label.
    assert "<b>reference</b> 2026-02-02 → 2026-02-09 (champion version 6&#x27;s reference)" in page
    assert f"{report.n_reference:,} rows" in page and f"{report.n_current:,} rows" in page
    assert "<b>current</b> 2026-03-02 → 2026-03-09" in page
    assert "<b>refreshed test set</b> 2,500 rows" in page
    # The decision shown is the run's (a metric retrain), not the drift rules' own.
    assert "decision: retrain · trigger performance" in page
    assert "data-state='retrain'" in page and "AP dropped 12.0%" in page
    # What to do next: the skew mapping first, then one step per code in order, then the candidate.
    steps = re.findall(r"<ol class='next'>(.*?)</ol>", page)[0]
    items = re.findall(r"<li>(.*?)</li>", steps)
    assert len(items) == 4
    assert "driftline skew --apply" in items[0] and "country" in items[0]
    assert "newest labelled weeks" in items[1] and "retrain" in items[1]
    assert "Investigate feature &#x27;plan&#x27;" in items[2]
    assert "rollback" in items[3]
    assert not EXTERNAL.search(page)
    assert "<script" not in page


def test_trend_panel_plots_the_recorded_numbers(tiny_contract: Contract) -> None:
    _, report = build(tiny_contract)
    page = render_html(report, context=_context())
    titles = re.findall(r"<circle [^>]*><title>(.*?)</title>", page)
    # Champion on both weeks, the candidate on the second; then the PSI of the alerting feature(s).
    assert "champion · week of 2026-02-16: 0.6123" in titles
    assert "champion · week of 2026-02-23: 0.5871" in titles
    assert "candidate · week of 2026-02-23: 0.6342" in titles
    alerting = [f.name for f in report.by_severity() if f.severity in ("warn", "alert")]
    assert alerting[0] == "tenure_days"
    assert "tenure_days · week of 2026-02-16: 0.0500" in titles
    assert "tenure_days · week of 2026-02-23: 0.3100" in titles
    # The SVG's y positions follow the values: the higher metric is drawn higher (smaller y).
    ys = {t: float(y) for y, t in re.findall(r'<circle cx="[^"]+" cy="([^"]+)"[^>]*><title>(.*?)</title>', page)}
    assert ys["champion · week of 2026-02-16: 0.6123"] > ys["candidate · week of 2026-02-23: 0.6342"]
    assert ys["champion · week of 2026-02-16: 0.6123"] < ys["champion · week of 2026-02-23: 0.5871"]


def test_insufficient_data_is_grey_not_green(tiny_contract: Contract) -> None:
    from driftline.drift.report import STATE_COLORS, decision_state

    rng = np.random.default_rng(1)
    n = 2000
    frame = pd.DataFrame(
        {
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.exponential(300, n),
            "score_hint": rng.normal(size=n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )
    s = DriftSettings()
    p = fit_profile(frame, tiny_contract, s)
    r = compare(p, frame.head(20), s)  # far below min_rows
    assert r.decision.action == "none" and r.decision.codes[0].code == "insufficient_data"
    page = render_html(r)  # the monitor's page: no context
    assert "data-state='insufficient data'" in page
    assert f"background:{STATE_COLORS['insufficient data']}" in page
    assert STATE_COLORS["insufficient data"] != STATE_COLORS["stable"]
    assert "Wait for more traffic or labels" in page
    stable = compare(p, frame, s)
    assert decision_state(stable.decision.action, [c.to_dict() for c in stable.decision.codes]) == "stable"
    assert "data-state='stable'" in render_html(stable)


def test_a_report_without_drift_still_shows_the_decision() -> None:
    ctx = _context(
        action="retrain",
        trigger="bootstrap",
        codes=[{"code": "no_champion", "level": "retrain", "text": "no champion yet"}],
        trend=[],
        skew_findings=[],
    )
    page = render_html(None, context=ctx)
    assert "decision: retrain · trigger bootstrap" in page and "(first version)" in page
    assert "Drift was not measured" in page and "No weekly history recorded" in page
    assert not EXTERNAL.search(page)
