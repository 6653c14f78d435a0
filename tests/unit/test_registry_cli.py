"""``driftline models`` end to end through the CLI app, on real MLflow (SQLite under tmp_path)."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from driftline.cli import build_app
from driftline.cli._common import run
from driftline.registry import ModelRegistry, Verdict

MODEL = "churn"
TAGS = {
    "1": {"trigger": "bootstrap", "gate.passed": "true", "gate.beat_champion": "pass: no champion yet"},
    "2": {"trigger": "drift", "gate.passed": "false", "gate.beat_champion": "fail: candidate 0.41 < champion 0.45"},
    "3": {"trigger": "schedule", "gate.passed": "true", "gate.beat_champion": "pass: 0.52 >= 0.51"},
}
METRIC = {"1": 0.51, "2": 0.41, "3": 0.52}
CONTRACT = {"name": "tiny", "target": "churned"}


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-registry-template")
    reg = ModelRegistry(
        f"sqlite:///{root / 'mlflow.db'}", MODEL, root / "artifacts", store_url=f"sqlite:///{root / 'store.db'}"
    )
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 20), "sessions": rng.uniform(0, 10, 20)})
    y = (x["sessions"] < 5).astype(int)
    for version, tags in TAGS.items():
        reg.register_candidate(
            verdict=Verdict(gates_passed=tags["gate.passed"] == "true", reasons=(tags["gate.beat_champion"],)),
            pipeline=LogisticRegression().fit(x, y),
            input_example=x.head(3),
            params={"C": 1.0},
            metrics={"test.average_precision": METRIC[version], "test.roc_auc": 0.6},
            tags=tags,
            artifacts={"contract.json": CONTRACT, "decision.md": f"version {version}"},
            idempotency_key=f"key-{version}",
        )
    reg.store.dispose()  # checkpoint the WAL so a file copy holds everything
    return root


@pytest.fixture
def cli(template, tmp_path, monkeypatch, capsys):
    """Run ``driftline <argv>`` against a private copy of the template store."""
    root = tmp_path / "store"
    root.mkdir()
    shutil.copyfile(template / "mlflow.db", root / "mlflow.db")
    shutil.copyfile(template / "store.db", root / "store.db")
    monkeypatch.setenv("DRIFTLINE_MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("DRIFTLINE_STORE_URL", f"sqlite:///{root / 'store.db'}")
    monkeypatch.setenv("DRIFTLINE_MODEL_NAME", MODEL)
    monkeypatch.setenv("USER", "tester")

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(build_app(), list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    invoke.registry = ModelRegistry(
        f"sqlite:///{root / 'mlflow.db'}", MODEL, store_url=f"sqlite:///{root / 'store.db'}"
    )
    return invoke


def _state(reg: ModelRegistry) -> tuple[dict, dict, list]:
    s = reg._backend.model_state()
    return dict(s.aliases), dict(s.tags), reg.store.moves(MODEL)


def test_list_and_show_json(cli):
    assert cli("models", "promote", "3", "--reason", "best so far")[0] == 0
    code, out, err = cli("models", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["version"] for r in rows] == ["1", "2", "3"]
    assert [r["aliases"] for r in rows] == [[], [], ["champion"]]
    assert [r["tags"]["trigger"] for r in rows] == ["bootstrap", "drift", "schedule"]
    assert [r["primary_metric"] for r in rows] == ["average_precision"] * 3
    assert [r["primary_metric_value"] for r in rows] == [0.51, 0.41, 0.52]
    assert [r["gate_status"] for r in rows] == ["passed", "failed", "passed"]
    assert all(r["created_at"].endswith("+00:00") for r in rows)

    code, out, err = cli("models", "show", "2", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["tags"] == {**TAGS["2"], "idempotency_key": "key-2"}
    assert shown["metrics"] == {"test.average_precision": 0.41, "test.roc_auc": 0.6}
    assert shown["artifacts"] == [
        {"path": "contract.json", "size": len(json.dumps(CONTRACT, indent=2, sort_keys=True))},
        {"path": "decision.md", "size": len("version 2")},
    ]

    code, out, _ = cli("models", "list")
    assert code == 0 and "champion" in out and "schedule" in out and "0.4100" in out
    code, out, _ = cli("models", "show", "3")
    assert code == 0 and "gate.beat_champion" in out and "decision.md" in out


def test_promote_rollback_history(cli):
    assert cli("models", "promote", "1", "--reason", "bootstrap")[1].strip() == (
        "champion: unset -> version 1 (promote, recorded as history #1)"
    )
    code, _, err = cli("models", "promote", "2", "--reason", "looks fine")
    assert code == 2
    assert err.strip().startswith("error: version 2 may not become champion: its gates failed") and err.count("\n") == 1
    assert err.strip().endswith("(use --force to move it anyway (recorded as forced))")
    assert cli("models", "promote", "2", "--force", "--reason", "accept the risk")[0] == 0
    assert cli("models", "promote", "3", "--reason", "better")[0] == 0
    assert cli("models", "promote", "3", "--alias", "challenger", "--reason", "shadow")[0] == 0
    code, _, err = cli("models", "rollback", "--previous", "--reason", "precision fell 12%")
    assert code == 2 and "version 2 may not become champion" in err and "--force" in err  # 2 failed its gates
    code, out, _ = cli("models", "rollback", "--previous", "--force", "--reason", "precision fell 12%")
    assert (code, out.strip()) == (0, "champion: version 3 -> version 2 (rollback (forced), recorded as history #5)")
    assert cli("models", "rollback", "--to", "1", "--reason", "pin the bootstrap")[0] == 0
    code, out, _ = cli("models", "rollback", "--to", "1", "--reason", "again")
    assert (code, out.strip()) == (0, "champion already points at version 1; nothing changed")
    assert cli.registry.alias_version("champion") == "1"

    code, out, err = cli("models", "history", "--json")
    assert code == 0, err
    moves = json.loads(out)
    assert [(m["seq"], m["alias"], m["from_version"], m["to_version"], m["kind"]) for m in moves] == [
        (1, "champion", None, "1", "promote"),
        (2, "champion", "1", "2", "promote"),
        (3, "champion", "2", "3", "promote"),
        (4, "challenger", None, "3", "promote"),
        (5, "champion", "3", "2", "rollback"),
        (6, "champion", "2", "1", "rollback"),
    ]
    assert {m["actor"] for m in moves} == {"tester"} and {m["state"] for m in moves} == {"done"}
    assert [m["forced"] for m in moves] == [False, True, False, False, True, False]
    assert moves[4]["reason"] == "precision fell 12%"
    code, out, _ = cli("models", "history", "--alias", "challenger", "--json")
    assert [m["seq"] for m in json.loads(out)] == [4]
    code, out, _ = cli("models", "history")
    assert code == 0 and "2 -> 1" in out and "rollback" in out and "tester" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", "99", "--reason", "x"], "error: model 'churn' has no version 99"),
        (["promote", "abc", "--reason", "x"], "error: version must be a positive whole number, got 'abc'"),
        (["promote", "1", "--alias", "staging", "--reason", "x"], "error: unknown alias 'staging'"),
        (["rollback", "--reason", "x"], "error: rollback needs exactly one of --to N or --previous"),
        (["rollback", "--to", "1", "--previous", "--reason", "x"], "error: rollback needs exactly one of"),
        (["rollback", "--previous", "--reason", "x"], "error: no champion before version 1 is recorded"),
        (["rollback", "--to", "7", "--reason", "x"], "error: model 'churn' has no version 7"),
        (["show", "12"], "error: model 'churn' has no version 12"),
        (["history", "--alias", "prod"], "error: unknown alias 'prod'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli, argv, message):
    assert cli("models", "promote", "1", "--reason", "bootstrap")[0] == 0
    before = _state(cli.registry)
    code, out, err = cli("models", *argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert _state(cli.registry) == before


def test_no_champion_and_missing_reason(cli):
    code, _, err = cli("models", "rollback", "--previous", "--reason", "x")
    assert (code, err.strip()) == (
        2,
        "error: model 'churn' has no champion to roll back from (use --to N to name the version)",
    )
    code, _, err = cli("models", "promote", "1")
    assert code != 0 and "reason" in err.lower()  # a usage error, reported by the CLI plumbing
    assert _state(cli.registry)[0] == {}


def test_unreachable_tracking_server(cli, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DRIFTLINE_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for argv in (["rollback", "--previous", "--reason", "x"], ["promote", "1", "--reason", "x"], ["list"]):
        start = time.monotonic()
        code, out, err = cli("models", *argv)
        assert code == 3 and out == ""  # 3: transient, worth a retry
        assert err.startswith(f"error: MLflow at http://127.0.0.1:{port} is unreachable") and err.count("\n") == 1
        assert time.monotonic() - start < 30  # not MLflow's minutes of retries


def test_empty_registry_without_settings_is_an_error_naming_the_default(tmp_path, monkeypatch, capsys):
    """No settings file: the default model name at the default place, so say so and exit 2."""
    monkeypatch.setenv("DRIFTLINE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    for argv in (["models", "list"], ["models", "list", "--json"], ["models", "history"]):
        assert run(build_app(), argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, err
        assert "of model 'driftline-churn' (the default name)" in err
        assert f"no settings file {tmp_path / 'driftline.yaml'}; pass --config FILE or set DRIFTLINE_CONFIG" in err
    assert not (tmp_path / "none").exists()


def test_empty_registry_with_settings_is_a_fresh_project(tmp_path, capsys):
    """A settings file naming the model: an empty registry is an answer (exit 0), named by model."""
    cfg = tmp_path / "driftline.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\nmodel_name: churn-new\n")
    assert run(build_app(), ["--config", str(cfg), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no versions of model 'churn-new' at sqlite:///") and out.endswith(" yet\n")
    assert run(build_app(), ["--config", str(cfg), "models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(build_app(), ["--config", str(cfg), "models", "history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not (tmp_path / "home" / "mlflow.db").exists()


def test_history_reads_the_store_without_importing_mlflow(cli):
    """``models history`` is served from driftline's store: MLflow's ~1 s import is not paid."""
    import subprocess
    import sys

    assert cli("models", "promote", "1", "--reason", "first")[0] == 0
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('mlflow loaded:', 'mlflow' in sys.modules, file=sys.stderr))\n"
        "from driftline.cli import main\n"
        "sys.argv = ['driftline', 'models', 'history', '--json']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [m["to_version"] for m in json.loads(done.stdout)] == ["1"]
    assert done.stderr.strip().splitlines()[-1] == "mlflow loaded: False"
