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
