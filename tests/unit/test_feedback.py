"""Feedback pool and review queue: collection, the capped training rows, and reviewed labels.

Real SQLite store under tmp_path, real scikit-learn training; the data comes from a small seeded
generator whose rare region changes its churn relationship at week 4 (a concept drift in a thin
segment), so the pool's rows are the ones that carry the new relationship.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.feedback import (
    FeedbackStore,
    collect,
    errors,
    export_reviews,
    import_reviews,
    status,
    thin_rows,
    training_rows,
)
from driftline.labels import join_labels
from driftline.settings import load_settings
from driftline.store import Store
from driftline.training import score, train

START = pd.Timestamp("2026-01-05")
CONTRACT = {
    "name": "regions",
    "entity_id": "user_id",
    "timestamp": "event_time",
    "target": {"name": "churned", "positive": 1},
    "segment": "region",
    "features": {
        "region": {"type": "categorical", "vocabulary": ["north", "south", "east", "rare"], "key": True},
        "x1": {"type": "numeric", "key": True},
        "x2": {"type": "numeric"},
    },
}


class Split:
    def __init__(self, test_start: pd.Timestamp) -> None:
        self.test_start = test_start


def world(rng: np.random.Generator, weeks: int = 12, per_week: int = 3000, drift_week: int = 4):
    """Rows per week; the 'rare' region (0.8%) inverts its x1 effect from ``drift_week`` on."""
    n = weeks * per_week
    week = np.repeat(np.arange(weeks), per_week)
    region = rng.choice(["north", "south", "east", "rare"], size=n, p=[0.4, 0.35, 0.242, 0.008])
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    z = 1.5 * x1 + 0.5 * x2 - 0.5
    flipped = (region == "rare") & (week >= drift_week)
    z = np.where(flipped, -3.0 * x1 + 1.0, z)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    t = START + pd.to_timedelta(week * 7 * 86400 + rng.integers(0, 6 * 86400, n), unit="s")
    ids = [f"r{i:06d}" for i in range(n)]
    traffic = pd.DataFrame(
        {
            "request_id": ids,
            "user_id": [f"u{i % 5000}" for i in range(n)],
            "event_time": t,
            "region": region,
            "x1": x1,
            "x2": x2,
        }
    ).sort_values("event_time", kind="stable")
    outcomes = pd.DataFrame(
        {
            "request_id": ids,
            "user_id": [f"u{i % 5000}" for i in range(n)],
            "churned": y,
            "observed_time": t + pd.Timedelta(days=7),
        }
    )
    return traffic.reset_index(drop=True), outcomes


def weeks(frame: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    w = ((frame["event_time"] - START) // pd.Timedelta(weeks=1)).astype(int)
    return frame[(w >= a) & (w < b)].reset_index(drop=True)


@pytest.fixture
def filled(tmp_path):
    c = parse_contract(CONTRACT)
    traffic, outcomes = world(np.random.default_rng(7))
    store = Store(f"sqlite:///{tmp_path}/store.db", c).create()
    store.append_predictions(traffic)
    store.append_outcomes(outcomes)
    labelled = join_labels(traffic, outcomes, c, START + pd.Timedelta(weeks=13), 7)
    s = load_settings(None, home=str(tmp_path / "home"), training={"estimator_params": {"max_iter": 60}})
    return c, store, labelled, s


def test_errors_at_the_threshold_and_confident_ones():
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.95, 0.40, 0.10, 0.60, 0.05, 0.92])
    assert errors(y, s, 0.5, 0.9).tolist() == ["", "misclassified", "", "misclassified", "confident_error",
                                               "confident_error"]  # fmt: skip
    # The threshold is the deployed one: at 0.35 the 0.40 row is right and nothing else changes.
    assert errors(y, s, 0.35, 0.9).tolist()[1] == ""


def test_thin_rows_are_rare_or_absent_values_of_the_window(tiny_contract):
    base = pd.DataFrame({"country": ["US"] * 98 + ["GB"] * 2, "plan": ["free"] * 100})
    rows = pd.DataFrame({"country": ["US", "GB", "DE", None], "plan": ["free"] * 4})
    assert thin_rows(rows, base, tiny_contract, 0.05).tolist() == [False, True, True, False]


def test_errors_enter_the_pool_once_and_hard_cases_the_queue(filled):
    c, store, labelled, s = filled
    champion = train(weeks(labelled, 0, 4), c, s.training).pipeline
    served = weeks(labelled, 4, 8)
    scores = score(champion, served, c)
    recent = weeks(labelled, 8, 9).drop(columns=["churned"])
    recent_scores = score(champion, recent, c)
    fb = FeedbackStore(store)
    first = collect(
        fb, served, scores, recent, recent_scores, s, model_version="1", vocab={"region": {"north", "south", "east"}}
    )
    kinds = errors(served["churned"].to_numpy(), scores, 0.5, 0.9)
    assert first.pool_added == {k: int((kinds == k).sum()) for k in ("confident_error", "misclassified")}
    pool = fb.read_pool()
    assert len(pool) == int((kinds != "").sum()) and set(pool["label_source"]) == {"outcome"}
    # Labels are kept as the store holds them, and every pooled row really was wrong.
    wrong = served.loc[kinds != "", "request_id"]
    assert set(pool["request_id"]) == set(wrong)
    # Confident errors and recent unseen / near-threshold rows are queued, one entry per request.
    q = fb.read_queue()
    assert q["request_id"].is_unique
    assert set(q["reason"]) == {"confident_error", "unseen_value", "near_threshold"}
    assert (q.loc[q["reason"] == "unseen_value", "detail"].str.match(r"region=rare")).all()
    assert q["priority"].is_monotonic_decreasing
    # Rerunning adds nothing.
    again = collect(
        fb, served, scores, recent, recent_scores, s, model_version="1", vocab={"region": {"north", "south", "east"}}
    )
    assert again.pool_added == {} and again.queue_added == {}
    assert len(fb.read_pool()) == len(pool)


def test_the_pool_improves_the_next_candidate_on_the_drifted_thin_segment(filled):
    c, store, labelled, s = filled
    champion = train(weeks(labelled, 0, 4), c, s.training).pipeline
    served = weeks(labelled, 4, 10)  # the champion served these after the drift
    fb = FeedbackStore(store)
    collect(fb, served, score(champion, served, c), served.head(0), np.zeros(0), s, model_version="1")
    base, test = weeks(labelled, 8, 10), weeks(labelled, 10, 12)  # a short window: few rare rows
    fs = training_rows(fb, base, Split(START + pd.Timedelta(weeks=10)), s, np.random.default_rng(0))
    summary = fs.summary
    assert summary["used"] == summary["in_window"] + summary["added"] <= summary["cap"]
    assert summary["cap"] == int(0.2 * len(base)) and summary["added"] > 0
    added = fs.frame.iloc[len(base) :]
    assert (added["feedback"] == 1).all() and (added["region"] == "rare").all()  # thin rows only
    rare = (test["region"] == "rare").to_numpy()
    y = test["churned"].to_numpy()

    def brier(frame):
        p = score(train(frame, c, s.training).pipeline, test, c)
        return float(np.mean((p[rare] - y[rare]) ** 2)), float(np.mean((p - y) ** 2))

    (rare_without, all_without), (rare_with, all_with) = brier(base), brier(fs.frame)
    assert rare_with < rare_without - 0.02  # the drifted segment is learnt better
    assert all_with <= all_without * 1.01  # without losing more than 1% overall


def test_the_cap_trims_deterministically_and_stale_labels_are_left_out(filled):
    c, store, labelled, s = filled
    champion = train(weeks(labelled, 0, 2), c, s.training).pipeline
    served = weeks(labelled, 2, 10)
    fb = FeedbackStore(store)
    collect(fb, served, score(champion, served, c), served.head(0), np.zeros(0), s, model_version="1")
    small = load_settings(None, home=str(s.home), feedback={"max_share": 0.01})
    base = weeks(labelled, 6, 10)
    split = Split(START + pd.Timedelta(weeks=10))
    a = training_rows(fb, base, split, small, np.random.default_rng([0, 10]))
    b = training_rows(fb, base, split, small, np.random.default_rng([0, 10]))
    assert a.summary["used"] == a.summary["cap"] == int(0.01 * len(base)) and a.summary["trimmed"] > 0
    assert a.frame["feedback"].tolist() == b.frame["feedback"].tolist()
    # A later correction of an outcome makes the pooled label stale: it is not trained on.
    pool = fb.read_pool()
    row = pool.iloc[0]
    fixed = pd.DataFrame({"request_id": [row["request_id"]], "user_id": [row["entity_id"]]})
    fixed = fixed.assign(churned=[1 - int(row["label"])], observed_time=[START + pd.Timedelta(weeks=12)])
    store.append_outcomes(fixed)
    later = training_rows(fb, base, split, s, np.random.default_rng([0, 10]))
    assert later.summary["stale"] == 1


def test_review_import_quarantines_every_kind_of_bad_row_and_reconciles(filled, tmp_path):
    c, store, labelled, s = filled
    champion = train(weeks(labelled, 0, 4), c, s.training).pipeline
    served = weeks(labelled, 4, 6)
    recent = weeks(labelled, 11, 12).drop(columns=["churned"])
    fb = FeedbackStore(store)
    collect(fb, served, score(champion, served, c), recent, score(champion, recent, c), s, model_version="1",
            vocab={"region": {"north", "south", "east"}})  # fmt: skip
    top = export_reviews(fb, limit=5)
    assert top["request_id"].tolist() == fb.read_queue(limit=5)["request_id"].tolist()
    sheet = export_reviews(fb)  # every open or exported, unreviewed row
    assert len(sheet) == len(fb.read_queue()) and {"label", "reviewer", "observed_label", "x1"} <= set(sheet.columns)
    assert set(fb.read_queue(("exported",))["request_id"]) == set(sheet["request_id"])
    conf = sheet[sheet["reason"] == "confident_error"]["request_id"].tolist()
    other = sheet[sheet["reason"] != "confident_error"]["request_id"].tolist()
    observed = store.labels_for(sheet["request_id"].tolist())  # this world's outcomes all arrive
    rows = [
        (other[0], observed[other[0]], "ana"),  # accepted
        (other[1], observed[other[1]], ""),  # accepted (reviewer from the flag)
        (conf[0], observed[conf[0]], "ana"),  # agrees with the outcome: accepted
        (other[2], "", "ana"),  # blank: left for later
        ("", "1", "ana"),  # missing_request_id
        ("nope-1", "1", "ana"),  # unknown_id
        (other[3], "maybe", "ana"),  # bad_label
        (conf[1], str(1 - int(observed[conf[1]])), "ana"),  # conflicts_outcome
        (other[4], "1", "ana"),  # conflicting_labels_in_file (both copies)
        (other[4], "0", "bo"),
        (other[5], observed[other[5]], "ana"),  # accepted, then its repeat is duplicate_in_file
        (other[5], observed[other[5]], "ana"),
    ]
    frame = pd.DataFrame(rows, columns=["request_id", "label", "reviewer"])
    result = import_reviews(fb, frame, "reviews.csv", reviewer="cli-user")
    assert (result.read, result.accepted, result.unchanged, result.blank) == (12, 4, 0, 1)
    assert result.quarantined == {
        "missing_request_id": 1, "unknown_id": 1, "bad_label": 1, "conflicts_outcome": 1,
        "conflicting_labels_in_file": 2, "duplicate_in_file": 1,
    }  # fmt: skip
    assert result.reconciles
    q = store.read_quarantine("reviews.csv")
    assert sorted(q["reason"]) == sorted(f"review:{k}" for k, v in result.quarantined.items() for _ in range(v))
    pool = fb.read_pool().set_index("request_id")
    assert pool.loc[other[0], "label_source"] == "review" and pool.loc[other[0], "reviewer"] == "ana"
    assert pool.loc[other[1], "reviewer"] == "cli-user"
    st = status(fb)
    assert st["pool"]["by_source"]["review"] == 4 and st["queue"]["by_status"]["reviewed"] == 4
    # The same file again: what was accepted is unchanged; a different label is a conflict.
    again = import_reviews(fb, frame.iloc[[0, 1, 2]], "reviews.csv", reviewer="cli-user")
    assert (again.accepted, again.unchanged) == (0, 3)
    flipped = pd.DataFrame({"request_id": [other[0]], "label": [str(1 - int(observed[other[0]]))], "reviewer": ["bo"]})
    assert import_reviews(fb, flipped, "again.csv", None).quarantined == {"conflicts_outcome": 1}


def test_a_malformed_review_file_changes_nothing(filled):
    store = filled[1]
    fb = FeedbackStore(store).create()
    before = (store.count("quarantine"), len(fb.read_pool()))
    with pytest.raises(InputError, match=r"missing required column.*label"):
        import_reviews(fb, pd.DataFrame({"request_id": ["a"]}), "bad.csv", "ana")
    with pytest.raises(InputError, match="no reviewer"):
        import_reviews(fb, pd.DataFrame({"request_id": ["a"], "label": ["1"]}), "bad.csv", None)
    assert (store.count("quarantine"), len(fb.read_pool())) == before


def test_a_second_review_that_disagrees_with_the_first_is_quarantined(filled):
    store = filled[1]
    fb = FeedbackStore(store).create()
    row = {"request_id": "no-outcome-1", "entity_id": "u1", "event_us": 1, "reason": "near_threshold",
           "priority": 0.5, "status": "open", "added_us": 1}  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(fb.queue.insert(), [row])
    first = import_reviews(fb, pd.DataFrame({"request_id": ["no-outcome-1"], "label": ["1"]}), "a.csv", "ana")
    second = import_reviews(fb, pd.DataFrame({"request_id": ["no-outcome-1"], "label": ["0"]}), "b.csv", "bo")
    assert first.accepted == 1 and second.quarantined == {"conflicts_review": 1} and second.reconciles
    assert fb.read_pool().set_index("request_id").loc["no-outcome-1", "reviewer"] == "ana"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A fresh SQLite file, or a fresh database on the CI PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    import uuid

    import sqlalchemy as sa

    base = request.getfixturevalue("pg_url")
    name = f"fb_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


@pytest.mark.timeout(300)
def test_two_collectors_racing_store_each_error_once(store_url, tmp_path):
    import threading

    c = parse_contract(CONTRACT)
    traffic, outcomes = world(np.random.default_rng(9), weeks=6, per_week=1500)
    Store(store_url, c).create().append_predictions(traffic)
    Store(store_url, c).append_outcomes(outcomes)
    labelled = join_labels(traffic, outcomes, c, START + pd.Timedelta(weeks=7), 7)
    s = load_settings(None, home=str(tmp_path / "home"), training={"estimator_params": {"max_iter": 30}})
    champion = train(weeks(labelled, 0, 2), c, s.training).pipeline
    served = weeks(labelled, 2, 6)
    scores = score(champion, served, c)
    barrier, results, failures = threading.Barrier(2, timeout=60), [], []

    def one() -> None:
        try:
            fb = FeedbackStore(Store(store_url, c))
            barrier.wait()  # both create the tables at once, then collect at once
            fb.create()
            results.append(collect(fb, served, scores, served.head(0), np.zeros(0), s, model_version="1"))
        except Exception as e:  # surfaced below
            failures.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    wrong = int((errors(served["churned"].to_numpy(), scores, 0.5, 0.9) != "").sum())
    assert len(FeedbackStore(Store(store_url, c)).read_pool()) == wrong
    # Each row was counted as new by at most one of them (the other found it, or lost the race).
    assert sum(sum(r.pool_added.values()) for r in results) <= wrong + wrong
