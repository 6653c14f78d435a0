"""Crafted files against ingest: canonical ids, conflicts, labels, CSV spellings, odd values, re-ingest."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from driftline.cli import _common, build_app
from driftline.contract import parse_contract
from driftline.settings import load_settings
from driftline.store import Store
from tests.conftest import TINY_CONTRACT

HEADER = "request_id,user_id,event_time,country,plan,tenure_days,score_hint,auto_renew"


def _row(rid: str = "r1", *, ts: str = "2026-01-05T10:00:00", country: str = "US", tenure: str = "10") -> str:
    return f"{rid},u-{rid},{ts},{country},free,{tenure},0.5,true"


def _cli(*argv: str) -> int:
    return _common.run(build_app(), list(argv))


@pytest.fixture
def contract_file(tmp_path, tiny_contract):
    return str(tiny_contract.save(tmp_path / "contract.yaml"))


def _store(contract: dict = TINY_CONTRACT) -> Store:
    return Store.from_settings(load_settings(), parse_contract(contract)).create()


def _counts(store: Store) -> tuple[int, int, int]:
    return store.count("predictions"), store.count("outcomes"), store.count("quarantine")


def _csv(tmp_path, name: str, lines: list[str], header: str = HEADER) -> str:
    p = tmp_path / name
    p.write_text("\n".join([header, *lines]) + "\n")
    return str(p)


def _ingest(capsys, *argv: str) -> dict:
    code = _cli("ingest", *argv, "--json")
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["rows_in"] == report["stored"] + report["quarantined"] + report["duplicates_skipped"]
    assert report["reconciles"]
    return report


def _reasons(store: Store) -> dict[int, str]:
    q = store.read_quarantine()
    return {int(n): r.split(" (")[0] for n, r in zip(q["row_number"], q["reason"], strict=True)}


# -- item 2: canonical request ids, conflicts, labels ---------------------------------------


def test_integral_float_ids_are_integers_in_parquet_and_csv(tmp_path, contract_file, capsys):
    frame = pd.read_csv(_csv(tmp_path, "a.csv", [_row(str(900001 + i)) for i in range(3)]))
    frame["request_id"] = [900001.0, None, 900003.0]  # a blank id makes pandas use floats
    frame.to_parquet(tmp_path / "a.parquet")
    report = _ingest(capsys, str(tmp_path / "a.parquet"), "--contract", contract_file)
    assert (report["stored"], report["by_reason"]) == (2, {"missing_request_id": 1})
    store = _store()
    assert sorted(store.read_predictions()["request_id"]) == ["900001", "900003"]
    # The same requests as CSV text ("900001.0" or "900001") are the same ids with the same content.
    again = _csv(tmp_path, "b.csv", [_row("900001.0").replace("u-900001.0", "u-900001"), _row("900003")])
    report = _ingest(capsys, again, "--contract", contract_file)
    assert (report["stored"], report["duplicates_skipped"], report["quarantined"]) == (0, 2, 0)
    assert _counts(store) == (2, 0, 1)


def test_same_id_other_content_against_the_store_is_a_conflicting_duplicate(tmp_path, contract_file, capsys):
    first = _csv(tmp_path, "first.csv", [_row("r1"), _row("r2"), _row("r3")])
    assert _ingest(capsys, first, "--contract", contract_file)["stored"] == 3
    store = _store()
    before = _counts(store)
    second = _csv(tmp_path, "second.csv", [_row("r1"), _row("r2", tenure="99"), _row("r4")])
    report = _ingest(capsys, second, "--contract", contract_file)
    assert (report["stored"], report["duplicates_skipped"], report["quarantined"]) == (1, 1, 1)
    assert report["by_reason"] == {"conflicting_duplicate": 1}
    assert _counts(store) == (before[0] + 1, 0, before[2] + 1)
    assert _reasons(store) == {3: "conflicting_duplicate"}  # line 3 of second.csv
    assert store.read_predictions().set_index("request_id").loc["r2", "tenure_days"] == 10  # first copy kept


def test_conflicts_between_files_of_one_batch(tmp_path, contract_file, capsys):
    a = _csv(tmp_path, "a.csv", [_row("r1")])
    b = _csv(tmp_path, "b.csv", [_row("r1", country="GB")])
    report = _ingest(capsys, a, b, "--contract", contract_file)
    assert (report["stored"], report["by_reason"]) == (1, {"conflicting_duplicate": 1})


def test_same_id_other_content_within_one_file_is_a_conflicting_duplicate(tmp_path, contract_file, capsys):
    from driftline.ingest import CONFLICT_REASONS, WITHIN_BATCH_CONFLICT

    lines = [_row("r1"), _row("r2"), _row("r1", country="GB"), _row("r2"), _row("r1", tenure="11")]
    for name in ("a.csv", "a.parquet"):
        path = _csv(tmp_path, "a.csv", lines)
        if name.endswith(".parquet"):
            pd.read_csv(path).to_parquet(tmp_path / name)
            path = str(tmp_path / name)
        report = _ingest(capsys, path, "--contract", contract_file)
        assert report["by_reason"] == {"conflicting_duplicate": 2}
        assert (report["rows_in"], report["stored"], report["duplicates_skipped"]) == (
            5,
            2 if "csv" in name else 0,
            1 if "csv" in name else 3,
        )
    store = _store()
    q = store.read_quarantine()
    assert set(q["reason"]) == {WITHIN_BATCH_CONFLICT}
    assert sorted(q["row_number"].astype(int)) == [3, 4, 5, 6]  # CSV lines 4 and 6, Parquet rows 3 and 5
    assert WITHIN_BATCH_CONFLICT.split(" (")[0] in CONFLICT_REASONS and "duplicate_request_id" in CONFLICT_REASONS
    assert _counts(store) == (2, 0, 4)


def test_outcome_request_id_repeated_within_a_file_with_another_label_is_a_conflict(tmp_path, contract_file, capsys):
    lines = ["r1,u1,1,2026-01-12", "r1,u1,0,2026-01-12", "r2,u2,0,2026-01-12", "r2,u2,0,2026-01-12"]
    report = _ingest(capsys, _csv(tmp_path, "o.csv", lines, OUTCOMES), "--contract", contract_file)
    assert (report["stored"], report["duplicates_skipped"], report["by_reason"]) == (2, 1, {"conflicting_duplicate": 1})
    assert _reasons(_store()) == {3: "conflicting_duplicate"}


OUTCOMES = "request_id,user_id,churned,observed_time"


def test_outcome_labels_outside_the_contract_are_bad_labels(tmp_path, contract_file, capsys):
    labels = ["1", "0", "true", "1.0", "yes", "2", "-1", "0.5", " "]
    lines = [f"r{i},u{i},{v},2026-01-12" for i, v in enumerate(labels)]
    report = _ingest(capsys, _csv(tmp_path, "o.csv", lines, OUTCOMES), "--contract", contract_file)
    assert (report["kind"], report["stored"], report["by_reason"]) == ("outcomes", 4, {"bad_label": 5})
    store = _store()
    assert sorted(_reasons(store)) == [6, 7, 8, 9, 10]
    # The same request and time with another label is a conflict, the same label a duplicate.
    again = _csv(tmp_path, "o2.csv", ["r0,u0,1,2026-01-12", "r1,u1,1,2026-01-12"], OUTCOMES)
    report = _ingest(capsys, again, "--contract", contract_file)
    assert (report["duplicates_skipped"], report["by_reason"]) == (1, {"conflicting_duplicate": 1})
    assert _counts(store) == (0, 4, 6)


def test_text_target_accepts_its_positive_and_one_other_label(tmp_path, capsys):
    text = {**TINY_CONTRACT, "target": {"name": "churned", "positive": "churn"}}
    path = tmp_path / "text.yaml"
    parse_contract(text).save(path)
    lines = ["r1,u1,churn,2026-01-12", "r2,u2,stay,2026-01-12", "r3,u3,stay,2026-01-12", "r4,u4,maybe,2026-01-12"]
    report = _ingest(capsys, _csv(tmp_path, "o.csv", lines, OUTCOMES), "--contract", str(path))
    assert (report["stored"], report["by_reason"]) == (3, {"bad_label": 1})
    # Once 'stay' is stored it is the other label, whatever the next file holds most.
    lines = ["r5,u5,maybe,2026-01-12", "r6,u6,maybe,2026-01-12", "r7,u7,stay,2026-01-12"]
    report = _ingest(capsys, _csv(tmp_path, "o2.csv", lines, OUTCOMES), "--contract", str(path))
    assert (report["stored"], report["by_reason"]) == (1, {"bad_label": 2})


# -- item 3: CSV spellings, impossible times, odd values ------------------------------------


def test_na_none_null_are_values_in_csv(tmp_path, contract_file, capsys):
    lines = [_row("r1", country="NA"), _row("r2", country="None"), _row("r3", tenure="null"), _row("r4", tenure="NA")]
    report = _ingest(capsys, _csv(tmp_path, "na.csv", lines), "--contract", contract_file)
    assert report["stored"] == 2 and report["unseen_categories"] == {"country": 2}
    assert report["by_reason"] == {"wrong_type:tenure_days": 2}
    stored = _store().read_predictions().set_index("request_id")
    assert stored.loc["r1", "country"] == "NA" and stored.loc["r2", "country"] == "None"


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_now_today_and_out_of_era_years_are_bad_timestamps(tmp_path, contract_file, capsys, suffix):
    stamps = ["now", "today", " Today ", "1969-12-31T23:00:00", "2101-01-01", "2026-01-05T10:00:00"]
    path = _csv(tmp_path, "t.csv", [_row(f"r{i}", ts=t) for i, t in enumerate(stamps)])
    if suffix == "parquet":
        pd.read_csv(path, dtype=str).to_parquet(tmp_path / "t.parquet")
        path = str(tmp_path / "t.parquet")
    report = _ingest(capsys, path, "--contract", contract_file)
    assert (report["stored"], report["by_reason"]) == (1, {"bad_timestamp": 5})
    first = 2 if suffix == "csv" else 1
    assert sorted(_reasons(_store())) == list(range(first, first + 5))


def test_a_401_digit_integer_is_a_wrong_type_not_an_overflow(tmp_path, contract_file, capsys):
    big = "9" * 401
    lines = [_row("r1", tenure=big), _row("r2"), _row("r3", ts=big), _row(big)]
    report = _ingest(capsys, _csv(tmp_path, "big.csv", lines), "--contract", contract_file)
    assert report["by_reason"] == {"wrong_type:tenure_days": 1, "bad_timestamp": 1}
    assert report["stored"] == 2  # a 401-digit request id is still an id (text)
    assert _reasons(_store()) == {2: "wrong_type:tenure_days", 4: "bad_timestamp"}


def test_mappings_and_lists_in_a_categorical_column_are_quarantined(tmp_path, contract_file, capsys):
    frame = pd.read_csv(_csv(tmp_path, "a.csv", [_row("r1"), _row("r2"), _row("r3")]))
    frame["country"] = pd.Series([{"code": "US"}, None, {"code": "GB"}], dtype=object)
    frame.to_parquet(tmp_path / "dicts.parquet")
    report = _ingest(capsys, str(tmp_path / "dicts.parquet"), "--contract", contract_file)
    # r2: the struct column's missing value is null:country; r1 and r3 hold mappings.
    assert report["by_reason"] == {"wrong_type:country": 2, "null:country": 1}
    lists = pd.read_csv(_csv(tmp_path, "b.csv", [_row("r4"), _row("r5")]))
    lists["plan"] = pd.Series([["free"], ["pro", "free"]], dtype=object)
    lists.to_parquet(tmp_path / "lists.parquet")
    report = _ingest(capsys, str(tmp_path / "lists.parquet"), "--contract", contract_file)
    assert (report["stored"], report["by_reason"]) == (0, {"wrong_type:plan": 2})
    q = _store().read_quarantine()
    wrong = q[q["reason"].str.startswith("wrong_type")]
    assert len(wrong) == 4 and wrong["reason"].str.contains("a list or mapping is not one value").all()


def test_invalid_utf8_is_one_line_naming_file_line_and_column(tmp_path, contract_file, capsys):
    good = _csv(tmp_path, "good.csv", [_row("r1")])
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        ("\n".join([HEADER, _row("r2"), _row("r3", country="X")]) + "\n").replace(",X,", ",\xff,").encode("latin-1")
    )
    assert _cli("ingest", good, str(bad), "--contract", contract_file) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csv: line 3, column 'country': invalid UTF-8 (byte 0xff)" in err
    assert _counts(_store()) == (0, 0, 0)


# -- item 6: re-ingesting does not duplicate quarantine records -----------------------------


def test_reingesting_a_file_keeps_one_quarantine_record_per_row(tmp_path, contract_file, capsys):
    lines = [_row("r1"), _row("r2", tenure="abc"), _row("r3", ts="now"), "r4,broken"]
    path = _csv(tmp_path, "batch.csv", lines)
    first = _ingest(capsys, path, "--contract", contract_file)
    assert (first["stored"], first["quarantined"], first["quarantine_already_recorded"]) == (1, 3, 0)
    store = _store()
    assert _counts(store) == (1, 0, 3)
    again = _ingest(capsys, path, "--contract", contract_file)
    assert (again["stored"], again["duplicates_skipped"], again["quarantined"]) == (0, 1, 3)
    assert again["quarantine_already_recorded"] == 3
    copy = tmp_path / "copy-of-batch.csv"
    shutil.copy(path, copy)  # same content, other name: still the same rows
    assert _ingest(capsys, str(copy), "--contract", contract_file)["quarantine_already_recorded"] == 3
    assert _counts(store) == (1, 0, 3)
    # A changed file is new content: its bad rows are recorded.
    changed = _csv(tmp_path, "batch.csv", [*lines, _row("r5", tenure="-1")])
    report = _ingest(capsys, changed, "--contract", contract_file)
    assert (report["quarantined"], report["quarantine_already_recorded"]) == (4, 0)
    assert _counts(store) == (1, 0, 7)
