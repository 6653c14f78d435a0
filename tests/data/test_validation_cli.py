"""``driftline validate`` and ``driftline skew`` on files a user brings (real GX, real files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline.cli import _common, build_app
from driftline.settings import DriftSettings


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{seed}-{i:03d}" for i in range(n)],
            "user_id": [f"u{i % 8}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05")
            + pd.Timedelta(weeks=seed)
            + pd.to_timedelta(np.arange(n) * 600, unit="s"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n).astype(float),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )


@pytest.fixture
def contract_file(tiny_contract, tmp_path):
    return str(tiny_contract.save(tmp_path / "contract.yaml"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = _common.run(build_app(), list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_passes_a_clean_parquet_file(capsys, tmp_path, contract_file):
    _frame().to_parquet(tmp_path / "batch.parquet")
    code, out, _ = _run(capsys, "validate", str(tmp_path / "batch.parquet"), "--contract", contract_file)
    assert code == 0
    assert out.startswith("PASS ") and "40 rows, 23/23 expectations met" in out


def test_validate_csv_json_reports_each_failed_expectation(capsys, tmp_path, contract_file):
    f = _frame()
    f.loc[[2, 9], "plan"] = "gold"
    f.loc[5, "tenure_days"] = 4000.0
    f["event_time"] = f["event_time"].astype(str)
    f.loc[6, "event_time"] = "not a time"
    f.to_csv(tmp_path / "batch.csv", index=False)
    code, out, _ = _run(capsys, "validate", str(tmp_path / "batch.csv"), "--contract", contract_file, "--json")
    assert code == 1
    d = json.loads(out)
    assert d["success"] is False and d["rows"] == 40 and d["bad_lines"] == 0 and d["batch_error"] is None
    failed = {(e["name"], e["column"]): e for e in d["expectations"] if not e["success"]}
    assert set(failed) == {
        ("expect_column_values_to_be_in_set", "plan"),
        ("expect_column_values_to_be_between", "tenure_days"),
        ("expect_column_values_to_not_be_null", "event_time"),  # the unparseable time
    }
    assert failed[("expect_column_values_to_be_in_set", "plan")]["unexpected_count"] == 2
    assert failed[("expect_column_values_to_be_in_set", "plan")]["examples"] == ["gold"]
    assert failed[("expect_column_values_to_be_between", "tenure_days")]["examples"] == [4000.0]
    assert {"name", "column", "success", "unexpected_count", "examples"} <= set(d["expectations"][0])


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize(
    ("make", "extra", "reason"),
    [
        (lambda f: f.drop(columns=["tenure_days"]), [], "missing column(s): tenure_days"),
        (lambda f: f.iloc[:0], [], "row count 0 is below the minimum 1"),
        (lambda f: f, ["--min-rows", "50"], "row count 40 is below the minimum 50"),
    ],
)
def test_validate_unusable_batch_exits_2_with_one_line(capsys, tmp_path, contract_file, make, extra, reason, as_json):
    path = tmp_path / "batch.csv"
    make(_frame()).to_csv(path, index=False)
    argv = ["validate", str(path), "--contract", contract_file, *extra] + (["--json"] if as_json else [])
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err == f"error: {path}: batch unusable: {reason}\n"


def test_validate_category_codes_as_numbers_and_unix_times_pass(capsys, tmp_path):
    from driftline.contract import parse_contract

    contract = parse_contract(
        {
            "name": "cards",
            "entity_id": "account",
            "request_id": "txn",
            "timestamp": "ts",
            "target": {"name": "fraud", "positive": "yes"},
            "features": {
                "MCC": {
                    "type": "categorical",
                    "nullable": True,
                    "vocabulary": [4111, 5411, 5812, 7995],
                    "closed": True,
                },
                "present": {"type": "boolean"},
            },
        }
    )
    c = str(contract.save(tmp_path / "cards.yaml"))
    n = 12
    frame = pd.DataFrame(
        {
            "txn": [f"t{i}" for i in range(n)],
            "account": [f"a{i % 3}" for i in range(n)],
            "ts": 1_772_406_008 + 3600 * np.arange(n),  # Unix seconds
            "MCC": np.array([4111, 5411, 5812, 7995] * 3, dtype="int64"),
            "present": [0, 1] * 6,
        }
    )
    frame.to_parquet(tmp_path / "ints.parquet")
    code, out, _ = _run(capsys, "validate", str(tmp_path / "ints.parquet"), "--contract", c)
    assert (code, out.split(":", 1)[0]) == (0, f"PASS {tmp_path / 'ints.parquet'}")
    frame.loc[3, "MCC"] = 1234
    frame.to_csv(tmp_path / "ints.csv", index=False)
    code, out, _ = _run(capsys, "validate", str(tmp_path / "ints.csv"), "--contract", c, "--json")
    assert code == 1
    (bad,) = [e for e in json.loads(out)["expectations"] if not e["success"]]
    assert (bad["name"], bad["column"], bad["examples"]) == ("expect_column_values_to_be_in_set", "MCC", ["1234"])
    frame["ts"] = np.arange(n)  # numbers, but not Unix times
    frame.to_csv(tmp_path / "small.csv", index=False)
    code, out, err = _run(capsys, "validate", str(tmp_path / "small.csv"), "--contract", c)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {tmp_path / 'small.csv'}: timestamp column 'ts' holds numbers that are not Unix")


def test_validate_broken_csv_lines_fail_the_batch(capsys, tmp_path, contract_file):
    path = tmp_path / "batch.csv"
    _frame(10).to_csv(path, index=False)
    with path.open("a") as fh:
        fh.write("r-x,u1,2026-01-05 00:00:00,US,free,1,0.5,True,extra,fields\n")
    code, out, _ = _run(capsys, "validate", str(path), "--contract", contract_file)
    assert code == 1
    assert "1 CSV line(s) could not be parsed" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_text(""), "file is empty"),
        (lambda p: p.write_bytes(b"PAR1 not really"), "cannot read as parquet"),
    ],
)
def test_validate_unusable_input_exits_2_with_one_line(capsys, tmp_path, contract_file, make, message):
    name = "batch.parquet" if "parquet" in message else "batch.csv"
    make(tmp_path / name)
    code, out, err = _run(capsys, "validate", str(tmp_path / name), "--contract", contract_file)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_validate_with_profile_and_docs(capsys, tmp_path, tiny_contract, contract_file):
    from driftline.drift.profile import fit_profile

    fit_profile(_frame(300, seed=1), tiny_contract, DriftSettings()).save(tmp_path / "profile.json")
    batch = _frame(seed=2)
    batch["tenure_days"] = batch["tenure_days"] * 1000  # also breaks the contract range
    batch.to_parquet(tmp_path / "batch.parquet")
    code, out, _ = _run(
        capsys,
        "validate",
        str(tmp_path / "batch.parquet"),
        "--contract",
        contract_file,
        "--profile",
        str(tmp_path / "profile.json"),
        "--docs",
        str(tmp_path / "docs"),
        "--json",
    )
    assert code == 1
    d = json.loads(out)
    failed = {e["name"] + ":" + str(e["column"]) for e in d["expectations"] if not e["success"]}
    assert failed == {
        "expect_column_values_to_be_between:tenure_days",
        "expect_column_quantiles_near_reference:tenure_days",
    }
    assert (tmp_path / "docs" / "index.html").exists() and d["docs"] == str(tmp_path / "docs" / "index.html")


def test_skew_cli_finds_country_names_and_exits_1(capsys, tmp_path, contract_file):
    train = _frame(200, seed=1)
    serve = _frame(100, seed=2)
    names = {"US": "United States", "GB": "United Kingdom", "DE": "Germany"}
    serve["country"] = serve["country"].map(names)
    train.to_parquet(tmp_path / "train.parquet")
    serve.to_csv(tmp_path / "serve.csv", index=False)
    argv = ["skew", "--training", str(tmp_path / "train.parquet"), "--serving", str(tmp_path / "serve.csv")]
    code, out, _ = _run(capsys, *argv, "--contract", contract_file, "--json")
    assert code == 1
    d = json.loads(out)
    assert d["blocks_promotion"] is True
    (f,) = d["findings"]
    assert (f["kind"], f["feature"], f["severity"], f["rows_affected"]) == ("vocabulary", "country", "high", 100)
    assert f["mapping"] == {v: k for k, v in names.items()}
    code, out, _ = _run(capsys, *argv, "--contract", contract_file, "--markdown", str(tmp_path / "skew.md"))
    assert code == 1 and "blocks promotion" in out
    assert '"United States": "US"' in (tmp_path / "skew.md").read_text()

    # --apply writes the mapping into the contract as reviewed aliases; then the skew is resolved
    # and validation reads the served names as the codes they stand for.
    code, out, _ = _run(capsys, *argv, "--contract", contract_file, "--apply")
    assert code == 0 and "country aliases " in out and "'United States' -> 'US'" in out
    from driftline.contract import load_contract

    assert load_contract(contract_file).features["country"].aliases == {v: k for k, v in names.items()}
    code, out, _ = _run(capsys, *argv, "--contract", contract_file, "--json")
    assert code == 0 and json.loads(out)["findings"] == []
    code, out, _ = _run(capsys, *argv, "--contract", contract_file, "--apply")
    assert (code, out.strip()) == (0, "no rename to apply: the skew report suggests no mapping")


def test_skew_cli_without_skew_exits_0(capsys, tmp_path, contract_file):
    _frame(200, seed=1).to_parquet(tmp_path / "train.parquet")
    _frame(100, seed=2).to_parquet(tmp_path / "serve.parquet")
    code, out, _ = _run(
        capsys,
        "skew",
        "--training",
        str(tmp_path / "train.parquet"),
        "--serving",
        str(tmp_path / "serve.parquet"),
        "--contract",
        contract_file,
    )
    assert code == 0
    assert "No skew found in 5 features." in out
