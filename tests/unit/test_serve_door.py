"""The gateway's door: each kind of bad field is a 422 naming the field and the rule; too big is 413."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from driftline.serve.door import DoorError, admit
from driftline.simulate import churn_contract

GOOD = {
    "request_id": "r-1",
    "user_id": "u1",
    "event_time": "2026-01-05T10:00:00",
    "country": "FR",
    "plan": "basic",
    "device": "desktop",
    "tenure_days": 15,
    "sessions_per_week": 14,
    "days_since_last_login": 0,
    "support_tickets": 0,
    "payment_failures": 0,
    "query_length_mean": 36.0,
    "auto_renew": False,
}


@pytest.fixture(scope="module")
def contract():
    return churn_contract()


def _problems(contract, body: Any, **kw: Any) -> tuple[int, list[tuple]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(DoorError) as err:
        admit(raw, contract, **kw)
    return err.value.status, [(p.field, p.rule, p.record) for p in err.value.problems]


def test_a_good_record_is_admitted_as_ingest_cleans_it(contract):
    got = admit(json.dumps(GOOD).encode(), contract)
    assert got.single and len(got.rows) == 1
    row = got.rows.iloc[0]
    assert row["request_id"] == "r-1" and row["tenure_days"] == 15.0 and not row["auto_renew"]
    assert str(row["event_time"]) == "2026-01-05 10:00:00"


def test_missing_ids_and_times_are_filled_in(contract):
    rec = {k: v for k, v in GOOD.items() if k not in ("request_id", "event_time")}
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    got = admit(json.dumps({"records": [rec, rec]}).encode(), contract, now=now)
    ids = got.rows["request_id"].tolist()
    assert not got.single and len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    assert set(got.rows["event_time"].astype(str)) == {"2026-03-01 12:00:00"}


def test_unix_times_and_iso_times_mix(contract):
    recs = [dict(GOOD, request_id="a", event_time=1767607200), dict(GOOD, request_id="b")]
    got = admit(json.dumps({"records": recs}).encode(), contract)
    assert got.rows["event_time"].astype(str).tolist() == ["2026-01-05 10:00:00", "2026-01-05 10:00:00"]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"plan": None}, "plan", "null"),
        ({"user_id": ""}, "user_id", "required"),
        ({"tenure_days": "many"}, "tenure_days", "type"),
        ({"tenure_days": True}, "tenure_days", "type"),
        ({"tenure_days": [1, 2]}, "tenure_days", "type"),
        ({"auto_renew": "maybe"}, "auto_renew", "type"),
        ({"event_time": "yesterday-ish"}, "event_time", "type"),
        ({"tenure_days": 4000}, "tenure_days", "range"),
        ({"support_tickets": -1}, "support_tickets", "range"),
        ({"plan": "platinum"}, "plan", "vocabulary"),
    ],
)
def test_each_kind_of_bad_field_is_named(contract, change, field, rule):
    status, problems = _problems(contract, {"records": [GOOD, dict(GOOD, request_id="r-2", **change)]})
    assert status == 422 and problems == [(field, rule, 1)]


def test_a_missing_required_field_is_named(contract):
    rec = {k: v for k, v in GOOD.items() if k != "payment_failures"}
    assert _problems(contract, rec) == (422, [("payment_failures", "required", None)])


def test_an_open_vocabulary_admits_new_values(contract):
    assert len(admit(json.dumps(dict(GOOD, country="ZZ", device="fridge")).encode(), contract).rows) == 1


def test_every_problem_of_a_record_is_listed_once(contract):
    bad = dict(GOOD, tenure_days=-5, plan="gold", auto_renew="maybe")
    status, problems = _problems(contract, bad)
    assert status == 422
    assert sorted(problems) == [
        ("auto_renew", "type", None),
        ("plan", "vocabulary", None),
        ("tenure_days", "range", None),
    ]


def test_messages_are_one_line_and_say_what_is_wrong(contract):
    with pytest.raises(DoorError) as err:
        admit(json.dumps(dict(GOOD, tenure_days=4000)).encode(), contract)
    (p,) = err.value.problems
    assert "4000" in p.message and "[0, 3650]" in p.message and "\n" not in p.message
    assert p.to_dict() == {"field": "tenure_days", "rule": "range", "message": p.message}


def test_repeated_request_ids_are_refused(contract):
    assert _problems(contract, {"records": [GOOD, GOOD]}) == (422, [("request_id", "duplicate", 1)])


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (b"{nope", "body", "json"),
        (b"[1, 2]", "body", "type"),
        (b'{"records": {}}', "records", "type"),
        (b'{"records": []}', "records", "required"),
        (b'{"records": [3]}', "record", "type"),
    ],
)
def test_unusable_bodies_are_422(contract, body, field, rule):
    status, problems = _problems(contract, body)
    assert status == 422 and problems[0][:2] == (field, rule)


def test_too_many_bytes_or_records_is_413(contract):
    assert _problems(contract, GOOD, max_bytes=100) == (413, [("body", "size", None)])
    recs = [dict(GOOD, request_id=f"r{i}") for i in range(4)]
    assert _problems(contract, {"records": recs}, max_records=3) == (413, [("body", "size", None)])
    assert len(admit(json.dumps({"records": recs}).encode(), contract, max_records=4).rows) == 4


def test_ids_equal_only_once_canonical_are_a_duplicate(contract):
    recs = [dict(GOOD, request_id=1), dict(GOOD, request_id="1", tenure_days=16)]
    assert _problems(contract, {"records": recs}) == (422, [("request_id", "duplicate", 1)])
