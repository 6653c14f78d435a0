"""Crafted files against validate, skew, profile and drift: one line naming file and column, exit 2, nothing written."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.cli import _common, build_app


def _frame(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 600, unit="s"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )


def _csv_with(tmp: Path, column: str, value: str, line: int = 4) -> Path:
    """A CSV whose ``line`` (header = line 1) holds ``value`` in ``column``."""
    f = _frame()
    f[column] = f[column].astype(object)
    f.loc[line - 2, column] = value
    path = tmp / f"bad_{column}.csv"
    f.to_csv(path, index=False)
    return path


def _big_int(tmp: Path) -> Path:
    return _csv_with(tmp, "tenure_days", "9" * 401)


def _text_number(tmp: Path) -> Path:
    return _csv_with(tmp, "tenure_days", "lots")


def _bad_bool(tmp: Path) -> Path:
    return _csv_with(tmp, "auto_renew", "maybe")


def _text_number_parquet(tmp: Path) -> Path:
    f = _frame()
    f["tenure_days"] = f["tenure_days"].astype(str)
    f.loc[2, "tenure_days"] = "lots"
    path = tmp / "text.parquet"
    f.to_parquet(path)
    return path


def _dicts(tmp: Path) -> Path:
    f = _frame()
    f["country"] = [{"code": "US"}] * len(f)
    path = tmp / "dicts.parquet"
    f.to_parquet(path)
    return path


def _lists(tmp: Path) -> Path:
    f = _frame()
    f["plan"] = [["free", "pro"]] * len(f)
    path = tmp / "lists.parquet"
    f.to_parquet(path)
    return path


def _bad_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.csv"
    text = _frame().to_csv(index=False).encode()
    lines = text.split(b"\n")
    lines[3] = lines[3].replace(b",US,", b",\xe9tats,").replace(b",GB,", b",\xe9tats,").replace(b",DE,", b",\xe9tats,")
    path.write_bytes(b"\n".join(lines))
    return path


def _corrupt_parquet(tmp: Path) -> Path:
    path = tmp / "corrupt.parquet"
    _frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[:300] + b"\x00" * 64)
    return path


def _corrupt_gzip(tmp: Path) -> Path:
    path = tmp / "corrupt.csv.gz"
    path.write_bytes(gzip.compress(_frame().to_csv(index=False).encode())[:60])
    return path


# (maker, text every message must hold besides the file name)
CASES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "401-digit integer": (_big_int, ["column 'tenure_days'", "numeric", "line 4", "99999"]),
    "text in a numeric column": (_text_number, ["column 'tenure_days'", "numeric", "line 4", "'lots'"]),
    "text in a numeric Parquet column": (_text_number_parquet, ["column 'tenure_days'", "row 3", "'lots'"]),
    "not a boolean": (_bad_bool, ["column 'auto_renew'", "boolean", "line 4", "'maybe'"]),
    "dicts in a categorical column": (_dicts, ["column 'country'", "one value"]),
    "lists in a categorical column": (_lists, ["column 'plan'", "one value"]),
    "invalid UTF-8": (_bad_utf8, ["line 4", "column 'country'", "invalid UTF-8"]),
    "corrupt Parquet": (_corrupt_parquet, ["cannot read as parquet"]),
    "corrupt gzip": (_corrupt_gzip, ["cannot read as csv"]),
}


@pytest.fixture
def files(tmp_path: Path, tiny_contract) -> dict[str, Path]:
    good = tmp_path / "good.parquet"
    _frame(200, seed=1).to_parquet(good)
    contract = tiny_contract.save(tmp_path / "contract.yaml")
    out = {"good": good, "contract": contract, "profile": tmp_path / "ref.json"}
    assert _run(["profile", str(good), "--contract", str(contract), "--out", str(out["profile"])])[0] == 0
    return out


def _run(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _common.run(build_app(), argv)
    return code, out.getvalue(), err.getvalue()


COMMANDS: dict[str, Callable[[dict[str, Path], Path, Path], list[str]]] = {
    "validate": lambda f, bad, tmp: ["validate", str(bad), "--contract", str(f["contract"])],
    "skew": lambda f, bad, tmp: [
        "skew", "--training", str(f["good"]), "--serving", str(bad), "--contract", str(f["contract"]),
    ],
    "skew --apply": lambda f, bad, tmp: [
        "skew", "--training", str(bad), "--serving", str(f["good"]), "--contract", str(f["contract"]), "--apply",
    ],
    "profile": lambda f, bad, tmp: [
        "profile", str(bad), "--contract", str(f["contract"]), "--out", str(tmp / "p.json"),
    ],
    "drift --reference": lambda f, bad, tmp: [
        "drift", "--reference", str(bad), "--current", str(f["good"]), "--contract", str(f["contract"]),
        "--html", str(tmp / "r.html"),
    ],
    "drift --current": lambda f, bad, tmp: [
        "drift", "--profile", str(f["profile"]), "--current", str(bad), "--contract", str(f["contract"]),
        "--html", str(tmp / "r.html"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_unreadable_input_is_one_line_exit_2_and_nothing_written(files, tmp_path, command, case):
    make, expected = CASES[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bad = make(tmp_path)
    before = files["contract"].read_text()
    code, out, err = _run(COMMANDS[command](files, bad, out_dir))
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: "), err
    assert "Traceback" not in err and "Error:" not in err.split(": ", 2)[-1][:20]
    for text in expected:
        assert text in err, (text, err)
    assert list(out_dir.iterdir()) == []  # no profile, no HTML report
    assert files["contract"].read_text() == before  # skew --apply rewrote nothing


def test_numbers_stored_as_text_are_read_as_numbers(files, tmp_path):
    f = _frame(200, seed=1)
    f["tenure_days"] = f["tenure_days"].map(str)  # a Parquet text column of numbers
    path = tmp_path / "text_numbers.parquet"
    f.to_parquet(path)
    code, out, err = _run(["validate", str(path), "--contract", str(files["contract"])])
    assert (code, err) == (0, "") and out.startswith("PASS ")
    code, out, _ = _run(["drift", "--profile", str(files["profile"]), "--current", str(path), "--json"])
    assert code == 0 and '"action": "none"' in out


def test_unknown_columns_are_listed_or_refused(files, tmp_path):
    f = _frame(200, seed=1)
    f["notes"] = "x"
    path = tmp_path / "extra.csv"
    f.to_csv(path, index=False)
    contract = str(files["contract"])
    for argv in (
        ["validate", str(path), "--contract", contract],
        ["profile", str(path), "--contract", contract, "--out", str(tmp_path / "p.json")],
        ["drift", "--profile", str(files["profile"]), "--current", str(path), "--contract", contract],
        ["skew", "--training", str(files["good"]), "--serving", str(path), "--contract", contract],
    ):
        code, _, err = _run(argv)
        assert code == 0, err
        assert f"note: {path}: ignored 1 column(s) not in the contract: notes" in err
        code, out, err = _run([*argv, "--strict-columns"])
        assert (code, out) == (2, "")
        assert err == f"error: {path}: column(s) not in the contract: notes (--strict-columns)\n"


def test_a_renamed_column_is_named_in_the_missing_column_message(files, tmp_path):
    path = tmp_path / "renamed.parquet"
    _frame(200, seed=1).rename(columns={"plan": "plan_type"}).to_parquet(path)
    contract = str(files["contract"])
    for argv in (
        ["profile", str(path), "--contract", contract, "--out", str(tmp_path / "p.json")],
        ["drift", "--profile", str(files["profile"]), "--current", str(path), "--contract", contract],
        ["validate", str(path), "--contract", contract],
    ):
        code, out, err = _run(argv)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and "plan" in err and "not in the contract: plan_type" in err, err
