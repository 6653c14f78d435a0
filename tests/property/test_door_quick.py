"""The door's quick path admits only what ingest's full check admits, with the very same cleaned values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.serve.door import Door, DoorError, _admit_checked
from driftline.simulate import churn_contract

CONTRACT = churn_contract().with_aliases({"country": {"United States": "US"}})
DOOR = Door(CONTRACT)
NOW = datetime(2026, 3, 1, 12, 0)

texts = st.sampled_from(["FR", " US ", "United States", "ZZ", "", "  ", "basic", "pro", "NA", "None", "7", "3.0"])
numbers = st.one_of(
    st.integers(-10, 5000),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-100, max_value=5000),
    st.sampled_from([2**60, 1e308, "12", "1e3", True, None]),
)
ids = st.one_of(st.sampled_from(["u1", " u2 ", "900001.0", "900001", "", "a.b", "-3.00"]), st.integers(-5, 10**6))
times = st.one_of(
    st.sampled_from(
        [
            "2026-01-05T10:00:00",
            "2026-01-05 10:00",
            "2026-01-05",
            "2026-01-05T10:00:00.123456",
            "2026-01-05T10:00:00+02:00",
            "2026-01-05T23:30:00-05:00",
            "2026-01-05T10:00:00Z",
            "1969-12-31T23:59:59",
            "2101-01-01",
            "now",
            "20260105",
        ]
    ),
    st.integers(1_600_000_000, 1_800_000_000),
    st.none(),
)


def _field(good, awkward):
    """Mostly plain values, one in sixteen awkward, so the quick path gets exercised and probed."""
    return st.integers(0, 15).flatmap(lambda i: awkward if i == 0 else good)


@st.composite
def records(draw):
    ranges = {n: CONTRACT.features[n].range for n in CONTRACT.numeric}
    rec = {
        "request_id": draw(_field(st.from_regex(r"[a-z]{1,3}-[0-9]{1,3}", fullmatch=True), ids)),
        "user_id": draw(_field(st.integers(0, 10**6), ids)),
        "event_time": draw(_field(st.sampled_from(["2026-01-05T10:00:00", "2026-02-01"]), times)),
        "country": draw(_field(st.sampled_from(["FR", "US", "DE", "United States"]), texts)),
        "plan": draw(_field(st.sampled_from(["basic", "pro", "team", "enterprise"]), texts)),
        "device": draw(
            _field(st.sampled_from(["desktop", "ios", "android", "web"]), st.one_of(texts, st.integers(0, 3)))
        ),
        "auto_renew": draw(_field(st.booleans(), st.sampled_from([None, "yes", 1, 0.5]))),
    }
    for name, (lo, hi) in ranges.items():
        plain = st.one_of(st.integers(int(lo), int(hi)), st.floats(lo, hi, allow_nan=False))
        rec[name] = draw(_field(plain, numbers))
    return {k: v for k, v in rec.items() if v is not None or draw(st.booleans())}


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float):
            if x != y:
                return False
        elif x != y or (type(x) is not type(y) and not (isinstance(x, bool) and isinstance(y, bool))):
            return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_whatever_the_quick_path_admits_the_full_check_admits_identically(rec):
    quick = DOOR._quick(rec, NOW)
    if quick is None:
        return
    body = json.dumps(rec)
    try:
        full = _admit_checked([json.loads(body)], True, CONTRACT, pd.Timestamp(NOW))
    except DoorError as e:  # the quick path admitted what ingest refuses
        raise AssertionError(f"quick path admitted {rec}, full check says {e}") from None
    (row,) = full.records
    if "request_id" not in rec:  # both invent an id; only its shape can agree
        quick["request_id"] = row["request_id"] = "generated"
    assert _same(quick, row), (rec, quick, row)


def test_plain_records_take_the_quick_path_and_awkward_ones_the_full_check():
    good = {"request_id": "r1", "user_id": 7, "event_time": "2026-01-05T10:00:00+01:00", "country": " FR "}
    good |= {"plan": "basic", "device": "web", "auto_renew": True}
    good |= dict.fromkeys(CONTRACT.numeric, 3)
    row = DOOR._quick(good, NOW)
    assert row is not None and row["user_id"] == "7" and row["country"] == "FR"
    assert row["event_time"] == datetime(2026, 1, 5, 9, 0) and row["tenure_days"] == 3.0
    for change in ({"auto_renew": "yes"}, {"tenure_days": "3"}, {"event_time": 1767607200}, {"plan": "gold"}):
        assert DOOR._quick(dict(good, **change), NOW) is None
    assert DOOR.admit(json.dumps(dict(good, auto_renew="yes")).encode(), now=datetime.now(UTC)).records[0]["auto_renew"]
