"""Drift engine: reference profiles, PSI / KL / JS per feature, sample-size-aware bands,
prediction, label, performance and segment drift, the trigger policy and the reports.

Typical use::

    profile = fit_profile(reference, contract, settings.drift, score_column="score")
    profile.save("profile.json")                      # stored with the model version
    report = compare(Profile.load("profile.json"), current, settings.drift)
    report.decision.action                            # "none" | "investigate" | "retrain"
    html = render_html(report)
"""

from driftline.drift.compare import DriftReport, FeatureDrift, compare, compare_parquet, evaluate
from driftline.drift.counts import WindowCounts, count_window
from driftline.drift.performance import performance_drift, performance_metrics
from driftline.drift.policy import Decision, decide
from driftline.drift.profile import Profile, fit_profile
from driftline.drift.report import render_html

__all__ = [
    "Decision",
    "DriftReport",
    "FeatureDrift",
    "Profile",
    "WindowCounts",
    "compare",
    "compare_parquet",
    "count_window",
    "decide",
    "evaluate",
    "fit_profile",
    "performance_drift",
    "performance_metrics",
    "render_html",
]
