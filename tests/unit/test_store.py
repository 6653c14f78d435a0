"""The production store on SQLite and on a real PostgreSQL server (the one .ci/run starts)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.errors import DriftlineError
from driftline.store import Store, from_micros, to_micros


def _rows(n: int, seed: int = 0, prefix: str = "r") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}{i:05d}" for i in range(n)],
            "user_id": [f"u{i % 7}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 3600, unit="s"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n).astype(float),
            "score_hint": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "auto_renew": rng.random(n) < 0.5,
        }
    )


@pytest.fixture(params=["sqlite", "sqlite-cursor", "postgres", "postgres-cursor"])
def store(request, tmp_path, tiny_contract):
    fast = not request.param.endswith("-cursor")  # the ADBC columnar read, or the DBAPI cursor
    if request.param.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'store.db'}"
        s = Store(url, tiny_contract, fast_read=fast).create()
        yield s
        s.dispose()
        return
    if "postgres" not in request.keywords:
        request.applymarker(pytest.mark.postgres)
    base = request.getfixturevalue("pg_url")
    schema_db = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {schema_db}")
    url = base.rsplit("/", 1)[0] + "/" + schema_db
    s = Store(url, tiny_contract, fast_read=fast).create()
    yield s
    s.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {schema_db} WITH (FORCE)")
    admin.dispose()


def test_round_trip_keeps_values_and_types(store):
    rows = _rows(50)
    res = store.append_predictions(rows)
    assert (res.stored, res.duplicates_skipped) == (50, 0)
    back = store.read_predictions()
    assert len(back) == 50
    cols = list(rows.columns)
    pd.testing.assert_frame_equal(
        back[cols].reset_index(drop=True),
        rows.reset_index(drop=True),
        check_dtype=False,
    )
    assert str(back["event_time"].dtype) == "datetime64[us]"
    assert back["auto_renew"].dtype == "boolean"
    assert back["score_hint"].isna().sum() == rows["score_hint"].isna().sum()


def test_append_is_idempotent_by_request_id(store):
    rows = _rows(30)
    store.append_predictions(rows.iloc[:20])
    res = store.append_predictions(rows)
    assert (res.stored, res.duplicates_skipped) == (10, 20)
    assert store.count("predictions") == 30


def test_window_is_half_open_and_sorted(store):
    store.append_predictions(_rows(48).sample(frac=1, random_state=1))
    w = store.read_predictions("2026-01-05 10:00", "2026-01-05 20:00")
    assert len(w) == 10
    assert w["event_time"].min() == pd.Timestamp("2026-01-05 10:00")
    assert w["event_time"].max() == pd.Timestamp("2026-01-05 19:00")
    assert w["event_time"].is_monotonic_increasing
    chunks = list(store.iter_window(start="2026-01-05 10:00", end="2026-01-05 20:00", chunksize=3))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert store.time_bounds() == (pd.Timestamp("2026-01-05"), pd.Timestamp("2026-01-06 23:00"))


def test_transaction_is_all_or_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.append_predictions(_rows(5), conn=conn)
        store.quarantine(pd.DataFrame({"a": [1]}), ["why"], "f.csv", conn=conn)
        raise RuntimeError("crash mid-batch")
    assert store.count("predictions") == 0 and store.count("quarantine") == 0


def test_outcomes_and_quarantine(store):
    out = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "user_id": ["u1", "u2"],
            "churned": ["1", "0"],
            "observed_time": pd.to_datetime(["2026-01-12", "2026-01-13"]),
        }
    )
    assert store.append_outcomes(out).stored == 2
    assert store.append_outcomes(out).duplicates_skipped == 2
    back = store.read_outcomes(start="2026-01-13")
    assert back["request_id"].tolist() == ["r2"]
    n = store.quarantine(pd.DataFrame({"x": [1, 2]}), ["bad a", "bad b"], "f.csv", row_numbers=[3, 4])
    q = store.read_quarantine("f.csv")
    assert n == 2 and q["reason"].tolist() == ["bad a", "bad b"] and q["row_number"].tolist() == [3, 4]
    assert q["raw"].tolist() == ['{"x":1}', '{"x":2}']


def test_existing_request_ids(store):
    store.append_predictions(_rows(5))
    assert store.existing_request_ids(["r00001", "zz", "r00004"]) == {"r00001", "r00004"}


def test_store_refuses_other_contract(tmp_path, tiny_contract):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url, tiny_contract).create()
    other = tiny_contract.model_copy(deep=True)
    other.features.pop("plan")
    with pytest.raises(DriftlineError, match="created for other columns"):
        Store(url, other).create()


def test_micros_round_trip_exact():
    ts = pd.Series(pd.to_datetime(["2026-01-05 00:00:00.000001", "1999-12-31 23:59:59", None], format="mixed"))
    us = to_micros(ts)
    assert us[0] == 1767571200000001
    back = from_micros(np.where(us == np.iinfo(np.int64).min, np.nan, us.astype(float)))
    assert back[0] == ts[0] and back[1] == ts[1] and pd.isna(back[2])


def test_outcome_corrections_are_kept_beside_the_original(store):
    first = pd.DataFrame(
        {"request_id": ["r1"], "user_id": ["u1"], "churned": ["0"], "observed_time": pd.to_datetime(["2026-01-12"])}
    )
    assert store.append_outcomes(first).stored == 1
    assert store.append_outcomes(first).duplicates_skipped == 1  # the same outcome again
    corrected = first.assign(churned="1", observed_time=pd.to_datetime(["2026-01-14"]))
    assert store.append_outcomes(corrected).stored == 1
    assert store.read_outcomes()["churned"].tolist() == ["0", "1"]


def test_store_url_errors_name_the_store(tmp_path, tiny_contract):
    with pytest.raises(DriftlineError, match=r"store URL 'sqlite:////proc/nope/s.db': cannot create folder /proc/nope"):
        Store("sqlite:////proc/nope/s.db", tiny_contract).create()
    with pytest.raises(DriftlineError, match=r"^store postgresql\+psycopg://u@127.0.0.1:9/x: cannot connect \(") as e:
        Store("postgresql+psycopg://u@127.0.0.1:9/x", tiny_contract).create()
    assert "\n" not in str(e.value)
