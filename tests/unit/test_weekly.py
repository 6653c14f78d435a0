"""Small pure pieces of the weekly job: trigger attribution, idempotency key, the run summary."""

from __future__ import annotations

import pandas as pd

from driftline import weekly


def test_retrain_cause_is_read_from_reason_codes_not_prose():
    from driftline.drift.policy import Decision, Reason

    def cause(*codes: str) -> str | None:
        return Decision.of("retrain", [Reason(c, "retrain", "whatever the words say") for c in codes]).cause

    assert cause("key_feature_alert") == cause("features_at_warn") == cause("score_alert") == "drift"
    assert cause("metric_drop") == "performance"
    assert cause("metric_drop", "score_alert") == "drift"  # inputs moved: attributed to drift
    assert Decision.of("investigate", [Reason("score_warn", "investigate", "x")]).cause is None


def _datasets(train_hash: str = "a", test_hash: str = "b") -> weekly.Datasets:
    return weekly.Datasets(pd.DataFrame(), pd.DataFrame(), {}, test_hash, train_hash)


def test_idempotency_key_changes_with_each_input_and_only_then(tiny_contract):
    from driftline.contract import parse_contract
    from driftline.splits import temporal_split
    from tests.conftest import TINY_CONTRACT

    c = tiny_contract
    split = temporal_split("2026-02-02 03:00", 3, 1, 7)
    base = weekly.idempotency_key(split, _datasets(), "sha1", c)
    same_week = temporal_split("2026-02-04 17:00", 3, 1, 7)  # later the same week: same windows
    assert base == weekly.idempotency_key(same_week, _datasets(), "sha1", c)
    other = parse_contract({**TINY_CONTRACT, "features": {**TINY_CONTRACT["features"], "extra": {"type": "numeric"}}})
    assert len({
        base,
        weekly.idempotency_key(temporal_split("2026-02-09 03:00", 3, 1, 7), _datasets(), "sha1", c),
        weekly.idempotency_key(temporal_split("2026-02-02 03:00", 4, 1, 7), _datasets(), "sha1", c),
        weekly.idempotency_key(split, _datasets(train_hash="c"), "sha1", c),
        weekly.idempotency_key(split, _datasets(test_hash="c"), "sha1", c),
        weekly.idempotency_key(split, _datasets(), "sha2", c),
        weekly.idempotency_key(split, _datasets(), "sha1", other),
    }) == 7  # fmt: skip


def test_the_test_sample_seed_is_the_week_not_the_clock():
    from driftline.splits import temporal_split

    monday, wednesday = temporal_split("2026-02-02 03:00", 3, 1, 7), temporal_split("2026-02-04 17:00", 3, 1, 7)
    assert weekly.sample_seed(0, monday) == weekly.sample_seed(0, wednesday)
    assert weekly.sample_seed(0, monday) != weekly.sample_seed(0, temporal_split("2026-02-09 03:00", 3, 1, 7))
    assert weekly.sample_seed(0, monday) != weekly.sample_seed(1, monday)


def test_summary_action_and_markdown():
    s = weekly.run_summary(model_name="m", error="boom")
    assert s["action"] == "failed" and "**Error:** boom" in weekly.summary_markdown(s)
    a = weekly.DriftAssessment("investigate", None, ["feature 'x' at warn"])
    s = weekly.run_summary(model_name="m", assessment=a)
    md = weekly.summary_markdown(s)
    assert s["action"] == "no retrain"
    assert md.startswith("# m: no retrain") and "- decision: **investigate** (trigger: -)" in md
    reg = weekly.Registration("3", created=True, promoted=True, previous_champion="2", run_id="r")
    s = weekly.run_summary(model_name="m", registration=reg)
    assert s["action"] == "promoted"
    assert "version 3 (new); promoted: True; previous champion: 2" in weekly.summary_markdown(s)


def test_cli_accepts_exactly_the_triggers_the_flow_records():
    from driftline.cli.run import TRIGGERS

    assert TRIGGERS == weekly.TRIGGERS


def test_investigate_escalates_once_per_episode_after_n_weeks(tmp_path):
    from driftline.drift.policy import Reason
    from driftline.registry.history import DecisionLog, RegistryStore

    log = DecisionLog(RegistryStore(f"sqlite:///{tmp_path / 'store.db'}"))
    warn = [Reason("feature_warn", "investigate", "feature 'x' at warn", "x", 0.12, 0.1)]

    def week_of(i: int) -> str:
        return (pd.Timestamp("2026-01-05") + pd.Timedelta(weeks=i)).isoformat()

    actions = []
    for i in range(9):
        prior = log.before("m", week_of(i))
        action, cause, codes = weekly.escalate("investigate", None, list(warn), prior, "3", 4)
        log.record("m", week_of(i), "3", action, [c.code for c in codes])
        actions.append((action, cause))
    # Weeks 0-2 investigate; week 3 is the 4th in a row -> retrain (drift: a feature moved); the
    # streak restarts after it, so week 7 escalates again, not every week.
    assert [a for a, _ in actions] == ["investigate"] * 3 + ["retrain"] + ["investigate"] * 3 + [
        "retrain",
        "investigate",
    ]
    assert actions[3][1] == "drift"
    # A new champion starts a new episode; a rerun of a week replaces that week's record.
    assert weekly.escalate("investigate", None, list(warn), log.before("m", week_of(9)), "4", 4)[0] == "investigate"
    log.record("m", week_of(8), "3", "none", ["stable"])
    assert [d.action for d in log.before("m", week_of(9), limit=2)] == ["none", "retrain"]
    # Disabled with 0; a metric-only concern escalates as performance.
    assert weekly.escalate("investigate", None, list(warn), log.before("m", week_of(9)), "3", 0)[0] == "investigate"
    metric = [Reason("metric_drop", "investigate", "ap dropped", "average_precision", 0.05, 0.03)]
    prior = [type("D", (), {"champion_version": "3", "action": "investigate"})()] * 3
    assert weekly.escalate("investigate", None, metric, prior, "3", 4)[:2] == ("retrain", "performance")
