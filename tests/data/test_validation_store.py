"""validate_and_store against the real store (SQLite, and PostgreSQL when .ci/run provides it)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.store import Store
from driftline.validation import validate_and_store, validate_frame


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, tiny_contract):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'store.db'}", tiny_contract).create()
        yield s
        s.dispose()
        return
    request.applymarker(pytest.mark.postgres)
    base = request.getfixturevalue("pg_url")
    db = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {db}")
    s = Store(base.rsplit("/", 1)[0] + "/" + db, tiny_contract).create()
    yield s
    s.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {db} WITH (FORCE)")
    admin.dispose()


def _batch(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "request_id": [f"r{i:03d}" for i in range(n)],
            "user_id": [f"u{i % 6}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 3600, unit="s"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n).astype(float),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )


def _faulty() -> pd.DataFrame:
    f = _batch()
    f.loc[[2, 11], "plan"] = "gold"
    f.loc[4, "tenure_days"] = np.nan
    f.loc[7, "tenure_days"] = -5.0
    f.loc[15] = f.loc[1]  # exact copy of row 1: the store skips it as a duplicate
    f.loc[16, "request_id"] = "r003"  # same id as row 3, other content: quarantined
    return f


def test_rows_are_stored_or_quarantined_and_counts_reconcile(store, tiny_contract):
    f = _faulty()
    out = validate_and_store(f, tiny_contract, store, source="batch-1")
    assert out["rows_in"] == 20
    assert out["by_reason"] == {
        "expect_column_values_to_be_between:tenure_days": 1,
        "expect_column_values_to_be_in_set:plan": 2,
        "expect_column_values_to_be_unique:request_id": 1,
        "expect_column_values_to_not_be_null:tenure_days": 1,
    }
    assert (out["stored"], out["quarantined"], out["duplicates_skipped"]) == (14, 5, 1)
    assert out["reconciles"] and not out["refused"] and out["success"] is False
    assert store.count("predictions") == 14 and store.count("quarantine") == 5
    q = store.read_quarantine("batch-1")
    raw = [json.loads(t) for t in q["raw"]]
    by_row = dict(zip(q["row_number"].tolist(), q["reason"], strict=True))
    assert by_row == {
        3: "expect_column_values_to_be_in_set:plan",
        5: "expect_column_values_to_not_be_null:tenure_days",
        8: "expect_column_values_to_be_between:tenure_days",
        12: "expect_column_values_to_be_in_set:plan",
        17: "expect_column_values_to_be_unique:request_id",
    }
    assert [r["request_id"] for r in raw] == ["r002", "r004", "r007", "r011", "r003"]
    stored = set(store.read_predictions()["request_id"])
    kept_rows = [0, 1, 3, 5, 6, 8, 9, 10, 12, 13, 14, 17, 18, 19]
    assert stored == {f"r{i:03d}" for i in kept_rows}


def test_same_batch_again_stores_nothing_new(store, tiny_contract):
    f = _faulty()
    validate_and_store(f, tiny_contract, store, source="a")
    again = validate_and_store(f, tiny_contract, store, source="b")
    assert (again["stored"], again["quarantined"], again["duplicates_skipped"]) == (0, 5, 15)
    assert again["reconciles"]
    assert store.count("predictions") == 14


@pytest.mark.parametrize("fault", ["missing_column", "too_few_rows"])
def test_batch_level_failure_stores_nothing(store, tiny_contract, fault):
    f = _faulty()
    kwargs = {}
    if fault == "missing_column":
        f = f.drop(columns=["country"])
    else:
        kwargs["min_rows"] = 100
    out = validate_and_store(f, tiny_contract, store, source="bad", **kwargs)
    assert out["refused"] and out["batch_error"]
    assert (out["stored"], out["quarantined"], out["duplicates_skipped"]) == (0, 0, 0)
    assert store.count("predictions") == 0 and store.count("quarantine") == 0
    expected = "missing column(s): country" if fault == "missing_column" else "row count 20 is below the minimum 100"
    assert out["batch_error"] == expected


def test_reuses_a_validation_result(store, tiny_contract):
    f = _batch()
    result = validate_frame(f, tiny_contract)
    out = validate_and_store(f, tiny_contract, store, source="x", validation=result)
    assert (out["stored"], out["quarantined"], out["duplicates_skipped"], out["success"]) == (20, 0, 0, True)


def test_good_rows_are_stored_as_validation_read_them(store, tiny_contract):
    f = _batch(6)
    f["auto_renew"] = ["yes", "no", "No", "1", "0", "maybe"]  # the last one is not a boolean
    f["plan"] = [" free", "pro ", "free", "pro", "free", "pro"]
    f["country"] = ["US", "GB", "DE", "US", 7, 7.0]  # numeric codes in an open vocabulary
    out = validate_and_store(f, tiny_contract, store, source="text")
    assert out["by_reason"] == {"expect_column_values_to_be_in_set:auto_renew": 1}
    assert (out["stored"], out["quarantined"]) == (5, 1)
    stored = store.read_predictions().sort_values("request_id")
    assert stored["auto_renew"].tolist() == [True, False, False, True, False]  # "no" is not stored as True
    assert stored["plan"].tolist() == ["free", "pro", "free", "pro", "free"]
    assert stored["country"].tolist() == ["US", "GB", "DE", "US", "7"]
    (raw,) = store.read_quarantine("text")["raw"]
    assert json.loads(raw)["auto_renew"] == "maybe" and json.loads(raw)["country"] == 7.0
