"""Ingest reconciliation on files crafted with every kind of bad row, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
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
    "conflicting_duplicate": "r1,u1,2026-01-05T10:00:00,US,pro,99,0.5,true",  # same id, other content
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


# -- category codes written as numbers ------------------------------------------------------

MCC_CONTRACT = {
    "name": "cards",
    "entity_id": "account",
    "request_id": "txn",
    "timestamp": "ts",
    "target": {"name": "fraud", "positive": "yes"},
    "features": {
        "MCC": {"type": "categorical", "nullable": True, "vocabulary": [4111, 5411, 5812, 7995], "closed": True},
        "present": {"type": "boolean"},
    },
}


def _mcc_frame() -> pd.DataFrame:
    """Float codes with a missing value, as pandas reads an integer column with a gap."""
    return pd.DataFrame(
        {
            "txn": ["t1", "t2", "t3", "t4", "t5"],
            "account": ["a1", "a2", "a1", "a3", "a2"],
            "ts": pd.to_datetime(["2026-03-02 10:00"] * 5),
            "MCC": [4111.0, 5411.0, np.nan, 7995.0, 9999.0],
            "present": [1, 0, 1, 1, 0],  # 0/1 integers are booleans
        }
    )


@pytest.fixture
def mcc_contract_file(tmp_path):
    from driftline.contract import parse_contract

    return str(parse_contract(MCC_CONTRACT).save(tmp_path / "mcc.yaml"))


def _store(contract: dict) -> Store:
    from driftline.contract import parse_contract
    from driftline.settings import load_settings

    return Store.from_settings(load_settings(), parse_contract(contract))


def test_numeric_codes_meet_a_closed_vocabulary(tmp_path, mcc_contract_file, capsys):
    _mcc_frame().to_parquet(tmp_path / "txn.parquet")
    assert _cli("ingest", str(tmp_path / "txn.parquet"), "--contract", mcc_contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["stored"], out["quarantined"], out["by_reason"]) == (4, 1, {"unknown_category:MCC": 1})
    store = _store(MCC_CONTRACT)
    stored = store.read_predictions().sort_values("txn")
    assert [None if pd.isna(v) else v for v in stored["MCC"]] == ["4111", "5411", None, "7995"]
    assert stored["present"].tolist() == [True, False, True, True]
    (reason,) = store.read_quarantine()["reason"]
    assert reason == "unknown_category:MCC ('9999' not in vocabulary)"


def test_int_and_text_codes_are_the_same_codes(tmp_path):
    from driftline.contract import parse_contract
    from driftline.ingest import check_predictions

    c = parse_contract(MCC_CONTRACT)
    f = _mcc_frame().iloc[:2]
    for codes in ([4111, 5411], ["4111", " 5411 "], pd.array([4111, 5411], dtype="Int64")):
        checked = check_predictions(f.assign(MCC=codes), c, "x")
        assert checked.good["MCC"].tolist() == ["4111", "5411"] and checked.bad_reasons == []


# -- Unix-time timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "per_second"), [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_unix_time_stamps_are_read_in_the_unit_their_size_implies(tmp_path, contract_file, capsys, unit, per_second):
    seconds = [1767607200, 1767610800, 1767614400]  # 2026-01-05 10:00, 11:00, 12:00 UTC
    lines = [HEADER] + [g.replace(g.split(",")[2], str(s * per_second)) for g, s in zip(GOOD, seconds, strict=True)]
    f = _write(tmp_path, f"epoch_{unit}.csv", lines)
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 3
    from driftline.contract import parse_contract

    times = _store(TINY_CONTRACT).read_predictions().sort_values("request_id")["event_time"]
    assert times.tolist() == [pd.Timestamp(f"2026-01-05 {h}:00") for h in (10, 11, 12)]
    assert parse_contract(TINY_CONTRACT).timestamp == "event_time"


def test_numbers_that_are_not_unix_times_refuse_the_file(tmp_path, contract_file, capsys):
    lines = [HEADER] + [g.replace(g.split(",")[2], str(i)) for i, g in enumerate(GOOD)]
    f = _write(tmp_path, "small_numbers.csv", lines)
    assert _cli("ingest", f, "--contract", contract_file) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "small_numbers.csv: timestamp column 'event_time' holds numbers that are not Unix times" in err
    assert _store(TINY_CONTRACT).create().count("predictions") == 0


# -- labels in a predictions file -----------------------------------------------------------


def test_target_in_a_predictions_file_is_reported(tmp_path, contract_file, capsys):
    f = _write(tmp_path, "with_label.csv", [HEADER + ",churned"] + [g + ",1" for g in GOOD])
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "predictions" and out["stored"] == 3
    assert (out["target_ignored"], out["target_column"], out["target_ignored_files"]) == (True, "churned", [f])
    assert out["rows_in"] == out["stored"] + out["quarantined"] + out["duplicates_skipped"]
    assert _cli("ingest", f, "--contract", contract_file) == 0
    text = capsys.readouterr().out
    assert (
        "note: labels in column 'churned' were not stored: labels go in an outcomes file "
        "(request id, churned, observed_time)" in text
    )


def test_target_and_observed_time_in_a_predictions_file_point_to_kind_outcomes(tmp_path, contract_file, capsys):
    lines = [HEADER + ",churned,observed_time"] + [g + ",1,2026-01-12" for g in GOOD]
    f = _write(tmp_path, "combined.csv", lines)
    assert _cli("ingest", f, "--contract", contract_file) == 0
    assert "the file also has observed_time, so ingest it again with --kind outcomes" in capsys.readouterr().out
    assert _cli("ingest", f, "--contract", contract_file, "--kind", "outcomes", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["kind"], out["stored"], out["target_ignored"]) == ("outcomes", 3, False)


def test_no_target_column_no_note(tmp_path, contract_file, capsys):
    f = _write(tmp_path, "plain.csv", [HEADER, *GOOD])
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["target_ignored"], out["target_column"], out["target_ignored_files"]) == (False, None, [])


# -- quarantine row numbers -----------------------------------------------------------------


def test_row_numbers_are_file_lines_after_broken_and_blank_lines(tmp_path, contract_file, capsys):
    lines = [
        HEADER,  # line 1
        GOOD[0],  # 2
        BAD["unparseable_line"],  # 3: broken
        BAD["wrong_type:tenure_days"],  # 4
        "",  # 5: blank, skipped by the reader
        "garbage,with,too,many,fields,in,it,really,yes",  # 6: broken
        GOOD[1],  # 7
        BAD["unknown_category:plan"],  # 8
        GOOD[2],  # 9
        BAD["bad_timestamp"],  # 10
    ]
    f = _write(tmp_path, "two_broken.csv", lines)
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["rows_in"], out["stored"], out["quarantined"]) == (8, 3, 5)
    q = _store(TINY_CONTRACT).read_quarantine()
    got = [(int(n), r.split(" (")[0]) for n, r in zip(q["row_number"], q["reason"], strict=True)]
    assert got == [
        (3, "unparseable_line"),
        (4, "wrong_type:tenure_days"),
        (6, "unparseable_line"),
        (8, "unknown_category:plan"),
        (10, "bad_timestamp"),
    ]
    # each row number points at the line that holds the row
    text = (tmp_path / "two_broken.csv").read_text().splitlines()
    for (n, _), raw in zip(got, q["raw"], strict=True):
        first_field = text[n - 1].split(",")[0]
        assert first_field in raw


def test_row_numbers_are_parquet_rows(tmp_path, contract_file):
    from driftline.ingest import csv_row_lines

    rows = pd.read_csv(_write(tmp_path, "g.csv", [HEADER, GOOD[0], BAD["wrong_type:tenure_days"], GOOD[1]]))
    rows.to_parquet(tmp_path / "g.parquet")
    assert _cli("ingest", str(tmp_path / "g.parquet"), "--contract", contract_file) == 0
    assert _store(TINY_CONTRACT).read_quarantine()["row_number"].tolist() == [2]
    # a quoted field over two lines: the lines no longer match the rows, so no line numbers
    p = tmp_path / "quoted.csv"
    p.write_text('a,b\n1,"x\ny"\n2,z\n')
    assert csv_row_lines(p, 2) is None
    assert csv_row_lines(tmp_path / "g.csv", 3).tolist() == [2, 3, 4]


def test_model_fields_text_labels_and_non_numeric_scores(tmp_path, contract_file, capsys, tiny_contract):
    rows = [
        HEADER + ",model_name,score,predicted_label",
        GOOD[0] + ",churn,0.91,Fraud",
        GOOD[1] + ",churn,high,1",
    ]
    f = _write(tmp_path, "scored.csv", rows)
    assert _cli("ingest", f, "--contract", contract_file, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["stored"], out["by_reason"]) == (1, {"wrong_type:score": 1})
    from driftline.settings import load_settings

    stored = Store.from_settings(load_settings(), tiny_contract).read_predictions()
    assert stored[["model_name", "score", "predicted_label"]].values.tolist() == [["churn", 0.91, "Fraud"]]
