"""Ingest reconciliation on files crafted with every kind of bad row, through the CLI."""

from __future__ import annotations

import json

import pytest

from driftline.cli import _common, build_app
from driftline.store import Store
from tests.conftest import TINY_CONTRACT

HEADER = "request_id,user_id,event_time,country,plan,tenure_days,score_hint,auto_renew"
GOOD = [
    "r1,u1,2026-01-05T10:00:00,US,free,10,0.5,true",
    "r2,u2,2026-01-05T11:00:00,GB,pro,20,,false",
    "r3,u3,2026-01-05T12:00:00,FR,pro,30,0.1,1",  # FR: outside an open vocabulary -> stored, counted
]
BAD = {
    "wrong_type:tenure_days": "r4,u4,2026-01-05T13:00:00,US,free,abc,0.5,true",
    "out_of_range:tenure_days": "r5,u5,2026-01-05T13:00:00,US,free,5000,0.5,true",
    "unknown_category:plan": "r6,u6,2026-01-05T13:00:00,US,gold,10,0.5,true",
    "null:country": "r7,u7,2026-01-05T13:00:00,,free,10,0.5,true",
    "wrong_type:auto_renew": "r8,u8,2026-01-05T13:00:00,US,free,10,0.5,maybe",
    "bad_timestamp": "r9,u9,not-a-time,US,free,10,0.5,true",
    "missing_request_id": ",u10,2026-01-05T13:00:00,US,free,10,0.5,true",
    "duplicate_request_id": "r1,u1,2026-01-05T10:00:00,US,pro,99,0.5,true",  # same id, other content
    "unparseable_line": "r11,u11,2026-01-05T13:00:00,US,free,10,0.5,true,EXTRA",
}
EXACT_COPY = GOOD[1]


def _cli(*argv: str) -> int:
    return _common.run(build_app(), list(argv))


@pytest.fixture
def contract_file(tmp_path, tiny_contract):
    return str(tiny_contract.save(tmp_path / "contract.yaml"))


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_every_bad_row_is_quarantined_with_its_reason(tmp_path, contract_file, capsys, tiny_contract):
    f = _write(tmp_path, "batch.csv", [HEADER, *GOOD, *BAD.values(), EXACT_COPY])
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_in"] == len(GOOD) + len(BAD) + 1
    assert out["stored"] == 3
    assert out["quarantined"] == len(BAD)
    assert out["duplicates_skipped"] == 1
    assert out["rows_in"] == out["stored"] + out["quarantined"] + out["duplicates_skipped"]
    assert out["by_reason"] == dict.fromkeys(BAD, 1)
    assert out["unseen_categories"] == {"country": 1}

    from driftline.settings import load_settings

    store = Store.from_settings(load_settings(), tiny_contract)
    q = store.read_quarantine()
    reasons = {r.split(" (")[0]: r for r in q["reason"]}
    assert set(reasons) == set(BAD)
    assert reasons["wrong_type:tenure_days"] == "wrong_type:tenure_days ('abc' is not a number)"
    assert reasons["out_of_range:tenure_days"] == "out_of_range:tenure_days (5000.0 not in [0, 1000])"
    broken = q[q["reason"].str.startswith("unparseable_line")].iloc[0]
    assert "EXTRA" in broken["raw"]
    assert sorted(store.read_predictions()["request_id"]) == ["r1", "r2", "r3"]

    # Re-ingesting the same file stores nothing new; the good rows count as duplicates.
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["stored"] == 0 and again["duplicates_skipped"] == 4


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [HEADER.replace(",plan", "")] + [g.replace(",free", "").replace(",pro", "") for g in GOOD],
            "missing required column(s): plan",
        ),
        ([], "file is empty"),
        ([HEADER], "no rows"),
    ],
)
def test_unusable_file_is_one_line_exit_2_and_store_untouched(tmp_path, contract_file, capsys, lines, expected):
    good = _write(tmp_path, "good.csv", [HEADER, *GOOD])
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + ("\n" if lines else ""))
    assert _cli("ingest", good, str(bad), "--contract", contract_file) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err and "bad.csv" in err
    from driftline.settings import load_settings

    s = load_settings()
    from driftline.contract import parse_contract

    store = Store.from_settings(s, parse_contract(TINY_CONTRACT)).create()
    assert store.count("predictions") == 0 and store.count("quarantine") == 0


def test_unreadable_files(tmp_path, contract_file, capsys):
    assert _cli("ingest", str(tmp_path / "nope.parquet"), "--contract", contract_file) == 2
    assert "nope.parquet: file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    assert _cli("ingest", str(junk), "--contract", contract_file) == 2
    assert "junk.parquet: cannot read as parquet" in capsys.readouterr().err
    other = tmp_path / "x.json"
    other.write_text("{}")
    assert _cli("ingest", str(other), "--contract", contract_file) == 2
    assert "unsupported file type" in capsys.readouterr().err


def test_parquet_and_outcomes(tmp_path, contract_file, capsys):
    import pandas as pd

    rows = pd.read_csv(_write(tmp_path, "g.csv", [HEADER, *GOOD]))
    rows.to_parquet(tmp_path / "g.parquet")
    assert _cli("ingest", str(tmp_path / "g.parquet"), "--contract", contract_file, "--json") == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 3
    out = _write(
        tmp_path,
        "outcomes.csv",
        ["request_id,user_id,churned,observed_time", "r1,u1,1,2026-01-12", "r2,u2,0,2026-01-12", "r3,u3,,2026-01-12"],
    )
    assert _cli("ingest", out, "--contract", contract_file, "--json") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["kind"] == "outcomes"
    assert (res["stored"], res["quarantined"], res["by_reason"]) == (2, 1, {"null:churned": 1})
