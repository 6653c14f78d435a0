"""``driftline drift`` and ``driftline profile`` on files a user brings, good and bad."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.cli import build_app
from driftline.cli._common import run
from driftline.contract import Contract, parse_contract


def data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{seed}-{i}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n), unit="min"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.exponential(300, n) * (1 + shift),
            "score_hint": rng.normal(size=n),
            "auto_renew": rng.random(n) < 0.5,
            "churned": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def files(tmp_path: Path, tiny_contract: Contract) -> dict[str, Path]:
    out = {
        "contract": tiny_contract.save(tmp_path / "contract.yaml"),
        "ref": tmp_path / "ref.parquet",
        "cur_csv": tmp_path / "cur.csv",
        "cur_parquet": tmp_path / "cur.parquet",
        "empty": tmp_path / "empty.csv",
    }
    data(1500, 1).to_parquet(out["ref"])
    cur = data(1000, 2, shift=1.0)
    cur.to_csv(out["cur_csv"], index=False)
    cur.to_parquet(out["cur_parquet"])
    cur.head(0).to_csv(out["empty"], index=False)
    other = parse_contract(
        {**tiny_contract.model_dump(mode="json"), "name": "other", "features": {
            **tiny_contract.model_dump(mode="json")["features"], "extra": {"type": "numeric"}}}
    )  # fmt: skip
    out["other"] = other.save(tmp_path / "other.yaml")
    return out


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(build_app(), argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_profile_then_drift_json_and_html(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    prof = tmp_path / "profile.json"
    code, out, _ = cli(["profile", str(files["ref"]), "--contract", str(files["contract"]), "--out", str(prof)], capsys)
    assert code == 0 and "profiled 1,500 rows, 5 features" in out
    assert json.loads(prof.read_text())["label"]["column"] == "churned"  # target found in the file
    html = tmp_path / "r.html"
    argv = ["drift", "--profile", str(prof), "--current", str(files["cur_csv"]), "--contract", str(files["contract"])]
    code, out, err = cli([*argv, "--json", "--html", str(html)], capsys)
    assert code == 0, err
    report = json.loads(out)
    f = report["features"]["tenure_days"]
    assert set(f) >= {
        "psi",
        "kl",
        "js",
        "severity",
        "effective_threshold",
        "unseen_share",
        "missing_share",
        "p_value",
        "n_current",
    }
    assert f["severity"] == "alert" and f["n_current"] == 1000
    assert report["decision"]["action"] == "investigate"
    assert html.read_text().startswith("<!DOCTYPE html>")
    # The same window from Parquet (streamed) and from a reference file gives the same numbers.
    code, out2, _ = cli(["drift", "--profile", str(prof), "--current", str(files["cur_parquet"]), "--json"], capsys)
    assert code == 0 and json.loads(out2)["features"] == report["features"]
    code, out3, _ = cli(
        [
            "drift",
            "--reference",
            str(files["ref"]),
            "--current",
            str(files["cur_csv"]),
            "--contract",
            str(files["contract"]),
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out3)["features"] == report["features"]


def test_human_output_and_fail_on(files: dict[str, Path], capsys) -> None:
    argv = [
        "drift",
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["cur_csv"]),
        "--contract",
        str(files["contract"]),
    ]
    code, out, _ = cli(argv, capsys)
    assert code == 0 and "decision: investigate" in out and "tenure_days" in out
    code, _, _ = cli([*argv, "--fail-on", "investigate"], capsys)
    assert code == 1  # as a failed validate; not 3, which means "transient, retry" for every command
    code, _, _ = cli([*argv, "--fail-on", "retrain"], capsys)
    assert code == 0
    code, _, _ = cli([*argv, "--fail-on", "none"], capsys)
    assert code == 0  # the default never exits 1, whatever the decision


def test_fail_on_help_says_the_default_never_fails(capsys) -> None:
    code, out, _ = cli(["drift", "--help"], capsys)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0
    assert "Exit 1 when the policy decides this or worse: 'investigate' (investigate or retrain) or 'retrain'." in flat
    assert "The default, 'none', never exits 1 for a decision." in flat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--current", "{empty}", "--reference", "{ref}"], "empty.csv: current file has no rows"),
        (["--current", "{cur_csv}", "--profile", "{profile}", "--contract", "{other}"], "fitted for contract 'tiny'"),
        (["--current", "{cur_csv}", "--reference", "{ref}", "-f", "nope"], "unknown feature(s) 'nope'"),
        (["--current", "{cur_csv}"], "give exactly one of --reference FILE or --profile PATH"),
        (["--current", "{tmp}/absent.csv", "--reference", "{ref}"], "absent.csv: file not found"),
        (["--current", "{cur_csv}", "--profile", "{cur_csv}"], "cur.csv: not valid JSON"),
        (["--current", "{cur_csv}", "--reference", "{ref}", "--fail-on", "x"], "--fail-on must be one of"),
    ],
)
def test_bad_input_is_one_line_exit_2(files, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    prof = tmp_path / "profile.json"
    assert cli(["profile", str(files["ref"]), "--contract", str(files["contract"]), "-o", str(prof)], capsys)[0] == 0
    names = {k: str(v) for k, v in files.items()} | {"profile": str(prof), "tmp": str(tmp_path)}
    argv = ["drift", "--contract", str(files["contract"]), *[a.format(**names) for a in args]]
    code, _, err = cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_missing_feature_column_names_the_file(files, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "nocol.csv"
    data(300, 3).drop(columns=["plan"]).to_csv(bad, index=False)
    code, _, err = cli(
        ["drift", "--reference", str(files["ref"]), "--current", str(bad), "--contract", str(files["contract"])], capsys
    )
    assert code == 2 and err.strip() == f"error: {bad}: missing feature column(s): plan"
