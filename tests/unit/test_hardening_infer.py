"""Bring your own data: `contract infer` without a request id column, binary targets, integer codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from driftline.cli import _common, build_app
from driftline.contract import parse_contract
from driftline.settings import load_settings
from driftline.store import Store


def _cli(*argv: str) -> int:
    return _common.run(build_app(), list(argv))


def _frame(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "timestamp": pd.date_range("2026-01-05", periods=n, freq="h"),
            "repaid": [i % 2 for i in range(n)],
            "amount": [float(10 + i) for i in range(n)],
            "mcc": [[4111, 5411, 5812, 7011][i % 4] for i in range(n)],
            "children": [i % 4 for i in range(n)],
        }
    )


def _infer(path, capsys, *extra: str) -> tuple[int, str, str]:
    code = _cli("contract", "infer", str(path), "--target", "repaid", "--timestamp", "timestamp", "--id", "id", *extra)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_unique_id_gives_a_derived_request_id_that_ingest_computes(tmp_path, capsys, suffix):
    path = tmp_path / f"data.{suffix}"
    frame = _frame()
    frame.to_parquet(path) if suffix == "parquet" else frame.to_csv(path, index=False)
    code, out, err = _infer(path, capsys)
    assert code == 0, err
    assert "# derived request id: ingest computes 'id_request'" in out
    assert "# integer codes (4 distinct values, 4111..7011" in out  # mcc proposed as categorical
    data = yaml.safe_load(out)
    assert data["request_id"] == "id_request" and data["target"]["positive"] == 1
    assert data["features"]["mcc"]["type"] == "categorical"
    assert data["features"]["mcc"]["vocabulary"] == ["4111", "5411", "5812", "7011"]
    assert data["features"]["children"]["type"] == "numeric"  # 0..3: count-like, stays numeric
    contract = tmp_path / "contract.yaml"
    contract.write_text(out)

    assert _cli("ingest", str(path), "--contract", str(contract), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_in"], report["stored"], report["quarantined"]) == (40, 40, 0)
    store = Store.from_settings(load_settings(), parse_contract(data))
    stored = store.read_predictions()
    assert sorted(stored["id_request"]) == sorted(stored["id"]) and "c0" in set(stored["id_request"])
    # Deterministic: the same file again stores nothing new.
    assert _cli("ingest", str(path), "--contract", str(contract), "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["stored"], again["duplicates_skipped"]) == (0, 40)
    assert store.count("predictions") == 40


def test_request_id_equal_to_the_id_derives_one(tmp_path, capsys):
    path = tmp_path / "data.parquet"
    _frame().to_parquet(path)
    code, out, _ = _infer(path, capsys, "--request-id", "id")
    assert code == 0 and yaml.safe_load(out)["request_id"] == "id_request"


def test_repeating_id_needs_an_explicit_choice_then_derives_id_at_time(tmp_path, capsys):
    frame = _frame().assign(id=[f"c{i % 5}" for i in range(40)])
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    code, _, err = _infer(path, capsys)
    assert code == 2 and err.count("\n") == 1 and "--request-id id" in err
    code, out, _ = _infer(path, capsys, "--request-id", "id")
    assert code == 0 and yaml.safe_load(out)["request_id"] == "id_timestamp_request"
    contract = tmp_path / "c.yaml"
    contract.write_text(out)
    assert _cli("ingest", str(path), "--contract", str(contract), "--json") == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 40
    store = Store.from_settings(load_settings(), parse_contract(yaml.safe_load(out)))
    assert "c0@2026-01-05T00:00:00" in set(store.read_predictions()["id_timestamp_request"])


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([True, False], True),
        (["yes", "no"], "yes"),
        (["0", "1"], 1),
        ([0.0, 1.0], 1),
    ],
)
def test_binary_targets_get_a_positive_label(tmp_path, capsys, labels, expected):
    frame = _frame().assign(repaid=[labels[i % 2] for i in range(40)])
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    code, out, err = _infer(path, capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["target"]["positive"] == expected


def test_two_strings_ask_for_positive_listing_both_and_more_are_refused(tmp_path, capsys):
    path = tmp_path / "data.parquet"
    _frame().assign(repaid=["paid" if i % 2 else "late" for i in range(40)]).to_parquet(path)
    code, _, err = _infer(path, capsys)
    assert code == 2 and "--positive is needed" in err and "(late, paid)" in err and err.count("\n") == 1
    code, out, _ = _infer(path, capsys, "--positive", "paid")
    assert code == 0 and yaml.safe_load(out)["target"]["positive"] == "paid"
    code, _, err = _infer(path, capsys, "--positive", "gone")
    assert code == 2 and "--positive 'gone' is not a value of 'repaid' (late, paid)" in err
    _frame().assign(repaid=[i % 3 for i in range(40)]).to_parquet(path)
    code, _, err = _infer(path, capsys)
    assert code == 2 and "has 3 distinct values (0, 1, 2); it must be binary" in err
