"""``driftline rollout`` through the CLI app, on real MLflow and a real store (SQLite under tmp_path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli import build_app
from driftline.cli._common import run
from driftline.registry import ModelRegistry
from tests.unit.test_serve_app import churn_frames, register_version, settings_for, write_settings


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict[str, Any]:
    """A registry with versions 1 (champion) and 2, both registered by driftline with passing gates."""
    root = tmp_path_factory.mktemp("rollout-cli")
    _traffic, labelled, contract = churn_frames()
    path = write_settings(root, contract)
    reg = ModelRegistry.from_settings(settings_for(path))
    v1 = register_version(reg, labelled, contract, "logistic_regression", "cli-v1")
    v2 = register_version(reg, labelled, contract, "logistic_regression", "cli-v2", seed=3)
    reg.promote(v1, reason="bootstrap", actor="t")
    reg.store.dispose()  # checkpoint the WAL so a file copy holds everything
    return {"root": root, "v1": v1, "v2": v2}


@pytest.fixture
def cli(template, tmp_path, monkeypatch, capsys):
    """Run ``driftline --config <copy> <argv>`` against a private copy of the template's databases."""
    root = tmp_path / "world"
    shutil.copytree(template["root"], root)
    cfg = yaml.safe_load((root / "driftline.yaml").read_text())
    cfg.update(
        home=str(root / "home"),
        contract=str(root / "contract.yaml"),
        store_url=f"sqlite:///{root / 'store.db'}",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
    )
    path = root / "driftline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("DRIFTLINE_HOME", raising=False)  # the file names its home
    monkeypatch.setenv("USER", "tester")

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(build_app(), ["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    invoke.registry = ModelRegistry.from_settings(settings_for(path))
    invoke.v1, invoke.v2 = template["v1"], template["v2"]
    return invoke


def _json(cli, *argv: str) -> Any:
    code, out, err = cli(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


def test_status_without_a_rollout(cli):
    got = _json(cli, "rollout", "status")
    assert got == {"model": "churn-serve", "rollout": None, "active": False, "decisions": [], "decisions_total": 0}
    code, out, _ = cli("rollout", "status")
    assert code == 0 and "no rollout of model 'churn-serve' yet" in out


def test_start_then_status_and_one_step(cli):
    code, out, err = cli("rollout", "start", cli.v2, "--reason", "try the new one")
    assert code == 0, err
    assert out.splitlines()[0] == "started rollout 1 of version 2 (champion 1): shadow"
    assert cli.registry.alias_version("challenger") == cli.v2
    assert cli.registry.alias_version("champion") == cli.v1
    move = cli.registry.history("challenger")[-1]
    assert (move.to_version, move.actor, move.reason) == (cli.v2, "tester", "try the new one")

    got = _json(cli, "rollout", "status")
    r = got["rollout"]
    assert got["active"] is True and got["decisions"] == [] and got["decisions_total"] == 0
    assert (r["rollout_id"], r["challenger"], r["champion"], r["phase"], r["share"], r["paused"]) == (
        1, "2", "1", "shadow", 0.0, False)  # fmt: skip
    assert r["last_action"] == "start"

    step = _json(cli, "rollout", "step")  # no traffic yet: too little evidence holds, never passes
    assert step["action"] == "hold"
    assert [w["code"] for w in step["reasons"]] == ["insufficient_shadow"]
    assert step["evidence"]["requests"] == {"champion": 0, "shadow": 0}
    assert step["rollout"]["phase"] == "shadow"

    got = _json(cli, "rollout", "status")
    assert got["decisions_total"] == 1
    [d] = got["decisions"]
    assert (d["action"], d["phase"], d["share"]) == ("hold", "shadow", 0.0)
    assert d["reasons"][0]["code"] == "insufficient_shadow" and d["decided"].endswith("+00:00")
    code, out, _ = cli("rollout", "status")
    assert code == 0 and "rollout 1 of version 2 (champion 1): shadow" in out and "insufficient_shadow" in out
    code, out, _ = cli("rollout", "step")
    assert code == 0 and out.startswith("hold: rollout 1 of version 2") and "insufficient_shadow" in out


def test_pause_and_resume(cli):
    assert cli("rollout", "start", cli.v2)[0] == 0
    paused = _json(cli, "rollout", "pause")
    assert paused["paused"] is True and paused["last_action"] == "pause"
    step = _json(cli, "rollout", "step")
    assert step["action"] == "hold" and [w["code"] for w in step["reasons"]] == ["paused"]
    assert _json(cli, "rollout", "status")["rollout"]["paused"] is True
    code, out, _ = cli("rollout", "resume")
    assert code == 0 and out.strip() == "resumed rollout 1 of version 2 (champion 1): shadow"
    assert _json(cli, "rollout", "status")["rollout"]["paused"] is False
    step = _json(cli, "rollout", "step")
    assert [w["code"] for w in step["reasons"]] == ["insufficient_shadow"]


def test_abort_clears_the_challenger_alias(cli):
    assert cli("rollout", "start", cli.v2)[0] == 0
    got = _json(cli, "rollout", "abort", "--reason", "wrong candidate")
    assert (got["phase"], got["share"], got["last_action"]) == ("aborted", 0.0, "abort")
    assert got["reasons"][0]["code"] == "aborted" and got["reasons"][0]["text"] == "wrong candidate"
    assert cli.registry.alias_version("challenger") is None
    assert cli.registry.alias_version("champion") == cli.v1
    clear = cli.registry.history("challenger")[-1]
    assert clear.kind == "clear" and clear.to_version is None and "wrong candidate" in clear.reason
    assert clear.actor == "tester"
    status = _json(cli, "rollout", "status")
    assert status["active"] is False and status["rollout"]["phase"] == "aborted"
    assert [d["action"] for d in status["decisions"]] == ["abort"]

    # nothing active any more: pause, resume and abort refuse in one line; a new rollout may start
    for argv in (("pause",), ("resume",), ("abort",)):
        code, _, err = cli("rollout", *argv)
        line = _one_line_error(err)
        assert code == 2 and line == "error: no active rollout (start one: driftline rollout start VERSION)"
    code, out, err = cli("rollout", "start", cli.v2)
    assert code == 0 and out.startswith("started rollout 2 of version 2"), err


def test_start_is_refused_while_a_rollout_is_active(cli):
    assert cli("rollout", "start", cli.v2)[0] == 0
    code, out, err = cli("rollout", "start", cli.v2)
    assert code == 2 and out == ""
    line = _one_line_error(err)
    assert "rollout 1 of version 2 is shadow" in line and line.endswith(
        "(driftline rollout abort --reason ... stops it)"
    )
    assert _json(cli, "rollout", "status")["rollout"]["rollout_id"] == 1


@pytest.mark.parametrize(
    ("version", "says"),
    [("1", "version 1 is already the champion"), ("99", "has no version 99"), ("abc", "positive whole number")],
)
def test_start_of_the_champion_or_an_unknown_version_is_refused(cli, version, says):
    code, out, err = cli("rollout", "start", version)
    assert code == 2 and out == ""
    assert says in _one_line_error(err)
    assert "Traceback" not in err
    assert cli.registry.alias_version("challenger") is None
    assert _json(cli, "rollout", "status")["rollout"] is None


def test_step_needs_a_contract_but_status_does_not(cli, tmp_path):
    path = Path(tmp_path / "world" / "driftline.yaml")
    cfg = yaml.safe_load(path.read_text())
    del cfg["contract"]
    path.write_text(yaml.safe_dump(cfg))
    assert _json(cli, "rollout", "status")["rollout"] is None
    code, _, err = cli("rollout", "step")
    assert code == 2 and "no contract" in _one_line_error(err)
