"""The story in words: first lines, sizes in words, the trend, outside alias moves, the decision log."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from driftline import story
from driftline.registry.history import AliasMove, DecisionLog, RegistryStore, outside_moves


def test_first_line_is_the_trigger_and_the_reason_that_carried_the_decision():
    codes = [
        {"code": "feature_warn", "level": "investigate", "text": "feature 'plan' at warn"},
        {"code": "metric_drop", "level": "retrain", "text": "average_precision dropped 10.2% relative"},
    ]
    assert story.first_line("drift", codes) == "Retrained on drift: average_precision dropped 10.2% relative"
    assert story.first_line("bootstrap", [{"code": "no_champion", "level": "retrain", "text": "no champion yet"}]) == (
        "First version (bootstrap): no champion yet"
    )
    long = [{"code": "metric_drop", "level": "retrain", "text": "x" * 500}]
    line = story.first_line("performance", long)
    assert len(line) == story.FIRST_LINE_MAX and line.endswith("…")


def test_sample_sizes_in_words_match_the_manifest():
    manifest = {
        "size": 2500,
        "size_requested": 2500,
        "entities": 7104,
        "whole_pool": False,
        "tail_kept": 120,
        "tail_cap": 250,
        "tail_by_reason": {"rare_category": 40, "extreme_value": 80, "unseen_value": 0},
        "segment_share_gap": {"sample": 0.0012, "uniform": 0.0153},
        "rare_segments": ["NZ", "IE", "SG", "PT"],
        "rare_segment_coverage": {"sample": 0.75, "uniform": 0.25},
    }
    lines = story.sample_in_words(manifest)
    text = " ".join(lines)
    assert "holds 2,500 rows, drawn from 7,104 labelled rows" in text
    assert "120 of them are long-tail picks (at most 250): 40 rare category, 80 extreme value" in text
    assert "unseen" not in text  # a reason with no rows is not listed
    assert f"by {0.0012:.1%} (total variation)" in text and f"would differ by {0.0153:.1%}" in text
    assert "3 of the 4 rare segments (a uniform sample: 1 of 4)" in text
    assert "0.000000" not in text and " -" not in text
    empty = story.sample_in_words({"tail_kept": 0, "segment_share_gap": {"sample": None}, "rare_segments": []})
    assert (
        "No long-tail rows" in empty[0] and "names no segment column" in empty[1] and "No segment is rare" in empty[2]
    )


def _version(v, week, cand, champ, parent):
    tags = {
        "test_window": f"{week}/x",
        "primary_metric": "average_precision",
        "champion_test_metric": champ,
        "parent_version": parent,
    }
    return SimpleNamespace(version=v, tags=tags, metric=lambda name: cand if name == "average_precision" else None)


def test_trend_merges_the_decision_log_with_registered_versions():
    from driftline.registry.history import WeeklyDecision

    decisions = [
        WeeklyDecision("2026-01-05", "1", "none", ("stable",), {}, {"metric": "average_precision", "champion": 0.61}),
        WeeklyDecision("2026-01-12", "1", "retrain", ("metric_drop",), {}, {}),  # an older row: no figures
    ]
    versions = [
        _version("1", "2025-12-29", 0.60, "", ""),  # the bootstrap week, before the log began
        _version("2", "2026-01-12", 0.66, "0.540000", "1"),
    ]
    points = story.trend(decisions, versions, "average_precision")
    assert [p.week for p in points] == ["2025-12-29", "2026-01-05", "2026-01-12"]
    assert (points[0].candidate, points[0].candidate_version, points[0].champion) == (0.60, "1", None)
    assert (points[1].champion, points[1].candidate) == (0.61, None)
    assert (points[2].champion, points[2].candidate, points[2].candidate_version) == (0.54, 0.66, "2")
    assert points[2].action == "retrain"


def test_decision_log_keeps_figures_and_reads_old_rows(tmp_path):
    log = DecisionLog(RegistryStore(f"sqlite:///{tmp_path / 'store.db'}"))
    log.record("m", "2026-01-05", "1", "none", ["stable"])  # the old shape: a plain list of codes
    log.record("m", "2026-01-12", "1", "investigate", ["feature_warn"], {"metric_cusum": 0.5})
    assert log.annotate("m", "2026-01-12", {"metric": "average_precision", "champion": 0.58, "psi": {"a": 0.12}})
    assert not log.annotate("m", "2026-02-02", {"champion": 1.0})  # no such week: nothing written
    log.annotate("m", "2026-01-12", {"candidate": 0.63, "candidate_version": "2"})
    rows = log.until("m", "2026-01-12")
    assert [r.week for r in rows] == ["2026-01-05", "2026-01-12"]
    assert rows[0].figures == {} and rows[0].codes == ("stable",)
    assert rows[1].state == {"metric_cusum": 0.5}
    assert rows[1].figures == {
        "metric": "average_precision",
        "champion": 0.58,
        "psi": {"a": 0.12},
        "candidate": 0.63,
        "candidate_version": "2",
    }
    # A rerun of the week replaces the decision but keeps the figures it does not restate.
    log.record("m", "2026-01-12", "1", "retrain", ["metric_drop"], {}, {"champion": 0.57})
    again = log.until("m", "2026-01-12")[-1]
    assert again.action == "retrain" and again.figures["champion"] == 0.57 and again.figures["candidate"] == 0.63
    assert [d.week for d in log.before("m", "2026-01-12")] == ["2026-01-05"]


def _move(seq, alias, frm, to, state="done", kind="promote"):
    return AliasMove(seq, datetime(2026, 1, 1, tzinfo=UTC), "flow", alias, frm, to, "r", kind=kind, state=state)


def test_outside_moves_compare_mlflow_aliases_with_the_recorded_history():
    moves = [_move(1, "champion", None, "1"), _move(2, "challenger", None, "2"), _move(3, "champion", "1", "2")]
    assert outside_moves(moves, {"champion": "2", "challenger": "2"}, ("champion", "challenger")) == []
    found = outside_moves(moves, {"champion": "1"}, ("champion", "challenger"))
    assert [(m.alias, m.recorded, m.actual) for m in found] == [("challenger", "2", None), ("champion", "2", "1")]
    assert found[1].last is not None and found[1].last.seq == 3
    assert "champion is at version 1 in MLflow but driftline's history has it version 2" in found[1].text
    assert found[1].to_dict()["last_seq"] == 3
    # Set by hand before driftline ever moved it: reported; a move in flight is not an outside move.
    assert [m.alias for m in outside_moves([], {"champion": "4"}, ("champion",))] == ["champion"]
    flight = [*moves, _move(4, "champion", "2", "3", state="intent")]
    assert outside_moves(flight, {"champion": "3", "challenger": "2"}, ("champion",)) == []
    # An aborted move leaves the alias where it was.
    aborted = [*moves, _move(4, "champion", "2", "3", state="aborted")]
    assert outside_moves(aborted, {"champion": "2", "challenger": "2"}, ("champion",)) == []


@pytest.mark.parametrize(
    ("passed", "promoted", "held", "expected"),
    [
        (True, True, "", "promoted to `champion`"),
        (True, False, "", "`challenger` — passed its gates"),
        (True, False, "champion moved", "not promoted: champion moved"),
        (False, False, "", "no alias — its gates failed"),
    ],
)
def test_alias_outcome(passed, promoted, held, expected):
    assert expected in story.alias_outcome(passed, promoted, held, "drift")


def test_training_window_tag_is_short():
    bt = {"chosen_train_weeks": 6, "windows": {"4": {"mean": 0.6123}, "6": {"mean": 0.6341}, "12": {"mean": None}}}
    assert story.training_window_tag(bt, 4) == "6 weeks (backtest mean 4w 0.612, 6w 0.634, 12w –)"
    assert story.training_window_tag(None, 4) == "4 weeks"
