"""Bounded inputs and settings hygiene: long fields, bombs, big or aliased YAML, FIFOs, env typos."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.cli import _common, build_app
from driftline.contract import parse_contract
from driftline.settings import load_settings
from driftline.store import Store
from tests.conftest import TINY_CONTRACT

HEADER = "request_id,user_id,event_time,country,plan,tenure_days,score_hint,auto_renew"
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = _common.run(build_app(), list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _row(rid: str, country: str = "US") -> str:
    return f"{rid},u-{rid},2026-01-05T10:00:00,{country},free,10,0.5,true"


@pytest.fixture
def contract_file(tmp_path, tiny_contract):
    return str(tiny_contract.save(tmp_path / "contract.yaml"))


def _counts() -> tuple[int, int]:
    store = Store.from_settings(load_settings(), parse_contract(TINY_CONTRACT)).create()
    return store.count("predictions"), store.count("quarantine")


def _one_line_exit_2(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_over_long_text_is_quarantined_and_stored_cut(tmp_path, contract_file, capsys):
    path = tmp_path / "long.csv"
    path.write_text("\n".join([HEADER, _row("r1"), _row("r2", "X" * 10_001), _row("r3", "Y" * 10_000)]) + "\n")
    code, out, err = _run(capsys, "ingest", str(path), "--contract", contract_file, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows_in"], report["stored"], report["by_reason"]) == (3, 2, {"too_long:country": 1})
    store = Store.from_settings(load_settings(), parse_contract(TINY_CONTRACT))
    q = store.read_quarantine()
    assert int(q["row_number"].iloc[0]) == 3 and len(q["raw"].iloc[0]) < 10_200


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.zip", ".csv"])
def test_input_over_the_byte_limit_is_refused_with_one_line(tmp_path, contract_file, capsys, monkeypatch, suffix):
    text = ("\n".join([HEADER, *(_row(f"r{i}") for i in range(200))]) + "\n").encode()
    path = tmp_path / f"big{suffix}"
    if suffix == ".csv.gz":
        path.write_bytes(gzip.compress(text))
    elif suffix == ".csv.bz2":
        path.write_bytes(bz2.compress(text))
    elif suffix == ".csv.zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("big.csv", text)
    else:
        path.write_bytes(text)
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{_row('g1')}\n")
    code, out, err = _run(capsys, "ingest", str(path), "--contract", contract_file, "--json")
    assert code == 0 and json.loads(out)["stored"] == 200  # under the default limit: fine
    monkeypatch.setenv("DRIFTLINE_MAX_INPUT_BYTES", "4096")
    code, _, err = _run(capsys, "ingest", str(good), str(path), "--contract", contract_file)
    _one_line_exit_2(code, err, path.name, "larger than the input limit of 4,096 bytes", "DRIFTLINE_MAX_INPUT_BYTES")
    monkeypatch.delenv("DRIFTLINE_MAX_INPUT_BYTES")
    assert _counts() == (200, 0)  # the batch with the big file wrote nothing


def test_parquet_over_the_byte_limit_and_a_bad_limit(tmp_path, contract_file, capsys, monkeypatch):
    path = tmp_path / "big.parquet"
    pd.DataFrame({"request_id": [f"r{i}" for i in range(5000)]}).to_parquet(path)
    monkeypatch.setenv("DRIFTLINE_MAX_INPUT_BYTES", "1000")
    code, _, err = _run(capsys, "ingest", str(path), "--contract", contract_file)
    _one_line_exit_2(code, err, "big.parquet", "larger than the input limit")
    monkeypatch.setenv("DRIFTLINE_MAX_INPUT_BYTES", "lots")
    code, _, err = _run(capsys, "ingest", str(path), "--contract", contract_file)
    _one_line_exit_2(code, err, "DRIFTLINE_MAX_INPUT_BYTES must be a positive number of bytes")


def test_yaml_over_one_mib_is_refused(tmp_path, contract_file, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 120_000)
    code, _, err = _run(capsys, "ingest", "x.csv", "--contract", str(big))
    _one_line_exit_2(code, err, "big.yaml: contract is larger than 1,048,576 bytes")
    code, _, err = _run(capsys, "--config", str(big), "ingest", "x.csv", "--contract", contract_file)
    _one_line_exit_2(code, err, "big.yaml: settings file is larger than 1,048,576 bytes")


def test_billion_laughs_fails_fast_for_contract_and_settings(tmp_path, contract_file, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(LAUGHS)
    assert bomb.stat().st_size < 400
    # Refused at the first alias (line 2), before anything expands: no timing asserted here.
    code, _, err = _run(capsys, "ingest", "x.csv", "--contract", str(bomb))
    _one_line_exit_2(code, err, "bomb.yaml: line 2: YAML aliases (*a) are not allowed")
    code, _, err = _run(capsys, "--config", str(bomb), "ingest", "x.csv", "--contract", contract_file)
    _one_line_exit_2(code, err, "bomb.yaml: line 2: YAML aliases (*a) are not allowed")
    code, _, err = _run(capsys, "drift", "--current", "x.csv", "--reference", "y.csv", "--contract", str(bomb))
    _one_line_exit_2(code, err, "YAML aliases")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_devices_are_refused_as_inputs(tmp_path, contract_file, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    data_fifo = tmp_path / "pipe.csv"
    os.mkfifo(data_fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    code, _, err = _run(capsys, "ingest", "x.csv", "--contract", str(fifo))
    _one_line_exit_2(code, err, "pipe.yaml: not a regular file")
    code, _, err = _run(capsys, "--config", str(fifo), "ingest", "x.csv", "--contract", contract_file)
    _one_line_exit_2(code, err, "pipe.yaml: not a regular file")
    for path in (data_fifo, zero):
        code, _, err = _run(capsys, "ingest", str(path), "--contract", contract_file)
        _one_line_exit_2(code, err, f"{path.name}: not a regular file")
    code, _, err = _run(capsys, "drift", "--current", str(zero), "--reference", str(zero), "--contract", contract_file)
    _one_line_exit_2(code, err, "zero.csv: not a regular file")


def test_empty_home_is_an_error(contract_file, capsys, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_HOME", "")
    code, _, err = _run(capsys, "ingest", "x.csv", "--contract", contract_file)
    _one_line_exit_2(code, err, "DRIFTLINE_HOME is set but empty")


def test_unknown_environment_variables_warn_with_the_nearest_field(tmp_path, contract_file, capsys, monkeypatch):
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{_row('g1')}\n")
    monkeypatch.setenv("DRIFTLINE_STORE_ULR", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("DRIFTLINE_MAX_INPUT_BYTES", str(1 << 20))  # known, not a setting: no warning
    code, _, err = _run(capsys, "ingest", str(good), "--contract", contract_file)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: DRIFTLINE_STORE_ULR is not a driftline setting (did you mean DRIFTLINE_STORE_URL?); ignored"
    ]
    assert "hunter2" not in err


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_column_named_twice_is_refused(tmp_path, contract_file, capsys, suffix):
    path = tmp_path / f"twice.{suffix}"
    if suffix == "csv":
        path.write_text(f"{HEADER},country\n{_row('r1')},GB\n")
    else:
        names = [*HEADER.split(","), "country"]
        pq.write_table(pa.table([pa.array(["x"]) for _ in names], names=names), path)
    code, _, err = _run(capsys, "ingest", str(path), "--contract", contract_file)
    _one_line_exit_2(code, err, f"twice.{suffix}:", "column 'country' appears more than once")
    assert _counts() == (0, 0)
