"""Issue 14, the rest: soft inferred ranges, every fault counted, ``null_values:``, duplicate columns."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml

from driftline.cli import _common, build_app
from driftline.contract import parse_contract
from driftline.errors import ConfigError, InputError
from driftline.infer import contract_yaml, infer_with_notes
from driftline.ingest import check_predictions, ingest_files
from driftline.io import read_table
from driftline.simulate import churn_contract
from driftline.store import Store
from driftline.validation.readable import check_readable
from tests.conftest import TINY_CONTRACT

HEADER = "request_id,user_id,event_time,country,plan,tenure_days,score_hint,auto_renew"


def _row(rid: str, *, country: str = "US", tenure: str = "10", hint: str = "0.5", renew: str = "true") -> str:
    return f"{rid},u-{rid},2026-01-05T10:00:00,{country},free,{tenure},{hint},{renew}"


def _csv(tmp_path, name: str, lines: list[str], header: str = HEADER) -> str:
    p = tmp_path / name
    p.write_text("\n".join([header, *lines]) + "\n")
    return str(p)


def _contract(**changes) -> dict:
    data = copy.deepcopy(TINY_CONTRACT)
    for key, value in changes.items():
        if key in data["features"]:
            data["features"][key].update(value)
        else:
            data[key] = value
    return data


def _ingest(tmp_path, contract: dict, *paths: str, kind: str = "auto"):
    c = parse_contract(contract)
    store = Store(f"sqlite:///{tmp_path}/store.db", c).create()
    report = ingest_files(list(paths), c, store, kind=kind)
    assert report.reconciles
    assert sum(report.by_first_reason.values()) == report.quarantined
    return report, store


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = _common.run(build_app(), list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- fingerprints of contracts that do not use the new fields ---------------------------------


def test_existing_contracts_keep_their_fingerprint_and_yaml():
    # Measured before range_soft / null_values existed; profiles and registrations key on these.
    churn = churn_contract()
    assert churn.fingerprint() == "bf7f5b99153ad4c3"
    assert churn.schema_fingerprint() == "f9ee6241889595c5"
    assert parse_contract(TINY_CONTRACT).fingerprint() == "8aeac4838fc71bc2"
    text = churn.to_yaml()
    assert "range_soft" not in text and "null_values" not in text
    assert parse_contract(yaml.safe_load(text)).fingerprint() == churn.fingerprint()


def test_the_new_fields_count_in_the_fingerprint_when_set():
    base = parse_contract(TINY_CONTRACT).fingerprint()
    soft = parse_contract(_contract(tenure_days={"range_soft": True}))
    nulls = parse_contract(_contract(null_values=["NA"]))
    feature_nulls = parse_contract(_contract(score_hint={"null_values": ["-999"]}))
    prints = {base, soft.fingerprint(), nulls.fingerprint(), feature_nulls.fingerprint()}
    assert len(prints) == 4
    for c in (soft, nulls, feature_nulls):  # and survive a YAML round trip
        assert parse_contract(yaml.safe_load(c.to_yaml())).fingerprint() == c.fingerprint()
        assert c.schema_fingerprint() == parse_contract(TINY_CONTRACT).schema_fingerprint()


def test_new_fields_are_checked():
    with pytest.raises(ConfigError, match="range_soft: true needs a range"):
        parse_contract(_contract(score_hint={"range_soft": True}))
    with pytest.raises(ConfigError, match="null_values"):
        parse_contract(_contract(null_values="NA"))
    with pytest.raises(ConfigError, match="quote it"):
        parse_contract(_contract(null_values=yaml.safe_load("[NA, null]")))
    c = parse_contract(_contract(null_values=["NA", -999, " n/a ", "", "NA"], score_hint={"null_values": [-1.0]}))
    assert c.null_values == ["NA", "-999", "n/a"]
    assert c.null_values_of("score_hint") == frozenset({"-1"})
    assert c.null_values_of("country") == frozenset({"NA", "-999", "n/a"})


# -- soft ranges -------------------------------------------------------------------------------


def test_values_outside_a_soft_range_are_stored_and_counted(tmp_path):
    lines = [_row("r1", tenure="5000"), _row("r2", tenure="2000"), _row("r3"), _row("r4", tenure="-1")]
    path = _csv(tmp_path, "soft.csv", lines)
    report, store = _ingest(tmp_path, _contract(tenure_days={"range_soft": True}), path)
    assert (report.stored, report.quarantined, report.by_reason) == (4, 0, {})
    assert report.outside_soft_range == {"tenure_days": 3}
    assert report.to_dict()["outside_soft_range"] == {"tenure_days": 3}
    assert sorted(store.read_predictions()["tenure_days"]) == [-1.0, 10.0, 2000.0, 5000.0]


def test_a_hand_written_range_stays_hard(tmp_path):
    lines = [_row("r1", tenure="5000"), _row("r2", tenure="2000"), _row("r3")]
    report, _ = _ingest(tmp_path, TINY_CONTRACT, _csv(tmp_path, "hard.csv", lines))
    assert (report.stored, report.quarantined, report.outside_soft_range) == (1, 2, {})
    assert report.by_reason == {"out_of_range:tenure_days": 2}


def test_contract_infer_marks_its_ranges_soft_and_says_so():
    frame = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(40)],
            "ts": pd.date_range("2026-01-05", periods=40, freq="h"),
            "repaid": [i % 2 for i in range(40)],
            "income": [1000.0 + 10 * i for i in range(40)],
        }
    )
    c, notes = infer_with_notes(frame, target="repaid", timestamp="ts", entity_id="id")
    assert (c.features["income"].range, c.features["income"].range_soft) == ((961.0, 1429.0), True)
    text = contract_yaml(c, notes)
    assert "range_soft: true" in text and "# range_soft: true marks a range drafted from this file" in text
    reviewed = yaml.safe_load(text)
    del reviewed["features"]["income"]["range_soft"]  # the person's review makes it hard
    assert parse_contract(reviewed).features["income"].range_soft is False


def test_soft_range_is_a_warning_in_the_validation_suite():
    from driftline.validation.suite import build_suite

    def between(contract: dict):
        suite = build_suite(parse_contract(contract))
        (e,) = [e for e in suite.expectations if type(e).__name__ == "ExpectColumnValuesToBeBetween"]
        return str(getattr(e.severity, "value", e.severity)), e.meta["driftline_level"]

    assert between(TINY_CONTRACT) == ("critical", "row")
    assert between(_contract(tenure_days={"range_soft": True})) == ("warning", "distribution")


def test_ingest_cli_reports_soft_range_and_faults(tmp_path, capsys):
    contract = parse_contract(_contract(tenure_days={"range_soft": True}))
    contract_file = str(contract.save(tmp_path / "contract.yaml"))
    lines = [_row("r1", tenure="5000"), _row("r2", country="", renew="maybe"), _row("r3", country="")]
    path = _csv(tmp_path, "batch.csv", lines)
    code, out, err = _cli(capsys, "ingest", path, "--contract", contract_file)
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "  rows per fault (a row with several faults counts under each; quarantined once, by its first):",
        "           2  null:country",
        "           1  wrong_type:auto_renew",
        "  outside range      1  tenure_days (stored; the range is soft: review it, then drop range_soft)",
    ]
    assert out.startswith("3 rows in: 1 stored, 2 quarantined, 0 duplicates skipped")
    code, out, err = _cli(capsys, "ingest", path, "--contract", contract_file, "--json")
    d = json.loads(out)
    assert (d["quarantined"], d["by_reason"], d["by_first_reason"], d["outside_soft_range"]) == (
        2,
        {"null:country": 2, "wrong_type:auto_renew": 1},
        {"null:country": 2},
        {"tenure_days": 1},
    )


# -- by_reason counts every fault --------------------------------------------------------------


def test_by_reason_counts_every_fault_of_a_row(tmp_path):
    lines = [
        _row("r1", country="", tenure="5000", renew="maybe"),  # three faults
        _row("r2", country=""),  # one
        _row("r3", tenure="lots"),  # one
        _row("r4"),
        ",u-r5,2026-01-05T10:00:00,,free,-3,0.5,true",  # missing id, null, out of range
    ]
    path = _csv(tmp_path, "many.csv", lines)
    report, store = _ingest(tmp_path, TINY_CONTRACT, path)
    assert (report.rows_in, report.stored, report.quarantined) == (5, 1, 4)
    assert report.by_reason == {
        "missing_request_id": 1,
        "null:country": 3,
        "out_of_range:tenure_days": 2,
        "wrong_type:auto_renew": 1,
        "wrong_type:tenure_days": 1,
    }
    assert report.by_first_reason == {"missing_request_id": 1, "null:country": 2, "wrong_type:tenure_days": 1}
    q = store.read_quarantine()
    assert len(q) == 4  # each row once, with its first reason
    assert [r.split(" (")[0] for r in q.sort_values("row_number")["reason"]] == [
        "null:country",
        "null:country",
        "wrong_type:tenure_days",
        "missing_request_id",
    ]
    again, _ = _ingest(tmp_path, TINY_CONTRACT, path)  # a re-ingest counts the same faults
    assert (again.by_reason, again.by_first_reason) == (report.by_reason, report.by_first_reason)
    assert store.count("quarantine") == 4


def test_a_blanked_list_is_not_counted_again_as_a_null(tmp_path):
    frame = read_table(_csv(tmp_path, "a.csv", [_row("r1"), _row("r2"), _row("r3", tenure="5000")])).frame
    frame["country"] = pd.Series(["US", {"a": 1}, ["x"]], dtype=object)
    frame["request_id"] = pd.Series(["r1", ["r2"], "r3"], dtype=object)
    checked = check_predictions(frame, parse_contract(TINY_CONTRACT), "a.csv")
    assert (len(checked.good), checked.bad_rows) == (1, [2, 3])
    assert checked.faults == {"wrong_type:country": 2, "wrong_type:request_id": 1, "out_of_range:tenure_days": 1}


def test_outcome_faults_and_broken_lines_are_all_counted(tmp_path):
    header = "request_id,churned,observed_time"
    lines = [
        "o1,1,2026-01-20T00:00:00",
        ",maybe,now",  # missing id, bad label, bad timestamp
        "o3,,2026-01-20T00:00:00",  # null label
        "o4,1,2026-01-20T00:00:00,extra",  # broken line
    ]
    report, _ = _ingest(tmp_path, TINY_CONTRACT, _csv(tmp_path, "out.csv", lines, header), kind="outcomes")
    assert (report.stored, report.quarantined) == (1, 3)
    assert report.by_reason == {
        "bad_label": 1,
        "bad_timestamp": 1,
        "missing_request_id": 1,
        "null:churned": 1,
        "unparseable_line": 1,
    }
    assert report.by_first_reason == {"missing_request_id": 1, "null:churned": 1, "unparseable_line": 1}


def test_a_column_name_with_parentheses_keeps_its_key(tmp_path):
    data = _contract()
    data["features"]["income (usd)"] = {"type": "numeric", "range": [0, 100]}
    header = HEADER + ",income (usd)"
    lines = [_row("r1") + ",500", _row("r2") + ",50", _row("r3", country="") + ",500"]
    report, _ = _ingest(tmp_path, data, _csv(tmp_path, "p.csv", lines, header))
    assert report.by_reason == {"out_of_range:income (usd)": 2, "null:country": 1}
    assert report.by_first_reason == {"out_of_range:income (usd)": 1, "null:country": 1}


# -- null_values ---------------------------------------------------------------------------------


def test_na_like_text_is_a_value_unless_the_contract_lists_it(tmp_path):
    lines = [_row("r1", tenure="NA"), _row("r2", hint="n/a"), _row("r3", country="NA"), _row("r4")]
    path = _csv(tmp_path, "na.csv", lines)
    (tmp_path / "a").mkdir()
    plain, _ = _ingest(tmp_path / "a", TINY_CONTRACT, path)
    assert (plain.stored, plain.by_reason) == (2, {"wrong_type:tenure_days": 1, "wrong_type:score_hint": 1})

    listed = _contract(null_values=["NA", "n/a"], country={"null_values": []})
    (tmp_path / "b").mkdir()
    report, store = _ingest(tmp_path / "b", listed, path)
    assert (report.stored, report.quarantined, report.by_reason) == (3, 1, {"null:tenure_days": 1})
    stored = store.read_predictions().set_index("request_id")
    assert pd.isna(stored.loc["r2", "score_hint"])  # nullable: "n/a" is stored as missing
    assert stored.loc["r3", "country"] == "NA"  # the feature's own (empty) list: Namibia stays


def test_a_numeric_sentinel_in_parquet_is_a_null_for_its_feature(tmp_path):
    frame = pd.read_csv(_csv(tmp_path, "a.csv", [_row("r1"), _row("r2"), _row("r3")]))
    frame["score_hint"] = [0.5, -999.0, -999]
    frame["country"] = ["US", "none", "US"]
    frame.to_parquet(tmp_path / "s.parquet")
    contract = _contract(score_hint={"null_values": [-999]}, null_values=["none"])
    report, store = _ingest(tmp_path, contract, str(tmp_path / "s.parquet"))
    assert (report.stored, report.quarantined, report.by_reason) == (2, 1, {"null:country": 1})
    stored = store.read_predictions().set_index("request_id")
    assert stored.loc["r1", "score_hint"] == 0.5 and pd.isna(stored.loc["r3", "score_hint"])


def test_data_commands_read_null_values_too(tmp_path):
    path = _csv(tmp_path, "d.csv", [_row("r1", tenure="NA"), _row("r2")])
    table = read_table(path)
    with pytest.raises(InputError, match="tenure_days"):
        check_readable(table, parse_contract(TINY_CONTRACT))
    frame = check_readable(table, parse_contract(_contract(null_values=["NA"])))
    assert frame["tenure_days"].isna().tolist() == [True, False]
    assert frame["tenure_days"].dtype == "float64"


def test_outcome_labels_and_ids_follow_contract_null_values(tmp_path):
    header = "request_id,churned,observed_time"
    lines = ["NA,1,2026-01-20T00:00:00", "o2,NA,2026-01-20T00:00:00", "o3,0,2026-01-20T00:00:00"]
    path = _csv(tmp_path, "out.csv", lines, header)
    report, _ = _ingest(tmp_path, _contract(null_values=["NA"]), path, kind="outcomes")
    assert (report.stored, report.by_reason) == (1, {"missing_request_id": 1, "null:churned": 1})


# -- duplicate column names ----------------------------------------------------------------------


def test_contract_infer_refuses_a_column_named_twice(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    path.write_text("id,ts,y,x,x\nu1,2026-01-05,1,1,2\nu2,2026-01-06,0,3,4\n")
    code, out, err = _cli(capsys, "contract", "infer", str(path), "--target", "y", "--timestamp", "ts", "--id", "id")
    assert code == 2 and out == ""
    assert err.strip() == f"error: {path}: line 1: column 'x' appears more than once; rename one"
