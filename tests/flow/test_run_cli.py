"""`driftline run`: bad settings and unusable data are one line and exit 2; a run streams its log
lines (to the terminal and to the Prefect API) and ends with its outcome."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftline.cli import _common, build_app

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-01-05")


def _run(argv, capsys):
    code = _common.run(build_app(), argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_settings_fail_before_prefect_starts(tmp_path, capsys, tiny_contract):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("drift:\n  psi_warn: abc\n")
    code, _, err = _run(["--config", str(cfg), "run", "refresh-and-retrain"], capsys)
    assert code == 2 and err.count("\n") == 1 and "field drift.psi_warn" in err
    cfg.write_text(yaml.safe_dump({"contract": str(tmp_path / "missing.yaml")}))
    code, _, err = _run(["--config", str(cfg), "run", "drift-monitor"], capsys)
    assert code == 2 and err.count("\n") == 1 and "missing.yaml: cannot read contract" in err
    code, _, err = _run(["--config", str(cfg), "run", "refresh-and-retrain", "--trigger", "bogus"], capsys)
    assert code == 2 and "unknown trigger 'bogus'" in err
    code, _, err = _run(["run", "refresh-and-retrain", "--as-of", "garbage"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: Invalid value for '--as-of'")


def test_a_run_on_an_empty_store_says_why_in_one_line(tmp_path, capsys, tiny_contract):
    cfg = tmp_path / "driftline.yaml"
    contract = tiny_contract.save(tmp_path / "contract.yaml")
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "contract": str(contract)}))
    argv = ["--config", str(cfg), "run", "refresh-and-retrain", "--as-of", "2026-03-02"]
    code, _, err = _run([*argv, "--quiet"], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "no labelled rows in the test window 2026-02-16..2026-02-23" in err
    assert err.rstrip().endswith("; the store holds no predictions yet")
    # Streaming: the run's own lines first, then the same single error line; never a traceback.
    code, _, err = _run(argv, capsys)
    lines = err.splitlines()
    assert code == 2 and "Beginning flow run" in lines[0], err
    assert lines[-1].startswith("error: no labelled rows in the test window 2026-02-16..2026-02-23"), err
    assert sum(ln.startswith("error:") for ln in lines) == 1 and "Traceback" not in err


@pytest.fixture
def drifting_world(tmp_path) -> Path:
    """8 weeks of 3,000 simulated users whose sessions shift from week 6; returns driftline.yaml."""
    from driftline.settings import load_settings
    from driftline.simulate import simulate
    from driftline.store import Store

    sim = simulate(weeks=8, users=3000, scenarios="covariate_shift", seed=5, start=START.date(), shift_week=6)
    contract = sim.contract.save(tmp_path / "contract.yaml")
    cfg = tmp_path / "driftline.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "contract": str(contract),
                "model_name": "run-cli",
                "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 0},
                "sampling": {"test_size": 300},
                "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100, "training_sample_rows": 500},
                "gates": {"auto_promote": True},
            }
        )
    )
    settings = load_settings(cfg)
    settings.ensure_home()
    store = Store.from_settings(settings, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    store.dispose()
    return cfg


def _api_log_messages(flow_run_id: str) -> list[str]:
    """The log lines the Prefect API (the session's test server) holds for one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def _flow_run_id(out: str) -> str:
    (line,) = [ln for ln in out.splitlines() if ln.startswith("  flow run: ")]
    return line.split()[2]


def test_run_streams_its_logs_ends_with_the_outcome_and_sends_logs_to_the_api(drifting_world, capsys):
    cfg = str(drifting_world)
    code, out, err = _run(["--config", cfg, "run", "refresh-and-retrain", "--as-of", "2026-02-16T03:00:00"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "refresh-and-retrain: completed — promoted", out
    assert "  version:  1 (promoted to champion)" in lines
    assert "  decision: retrain (trigger bootstrap)" in lines
    assert any(ln.startswith("  reason:   no champion yet") for ln in lines), out
    assert "Beginning flow run" in err and "champion: none yet" in err and "Traceback" not in err
    assert all(len(ln) < 300 for ln in err.splitlines())  # one line per record, long ones cut

    # The same lines reached the Prefect API (flushed at the end of the run; polled, generous deadline).
    run_id = _flow_run_id(out)
    deadline = time.monotonic() + 60
    while not any("champion: none yet" in m for m in _api_log_messages(run_id)):
        assert time.monotonic() < deadline, _api_log_messages(run_id)
        time.sleep(0.5)

    # The next day's monitor on shifted traffic: the level, the alerting features and the report.
    code, out, err = _run(["--config", cfg, "run", "drift-monitor", "--as-of", "2026-02-23T02:00:00"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "drift-monitor: completed — alert", out
    alerting = [ln.split()[1].rstrip(":") for ln in lines if ln.startswith("  alert ")]
    assert alerting and all("PSI " in ln for ln in lines if ln.startswith("  alert ")), out
    assert "  event:    driftline.drift.alert" in lines
    (report,) = [ln.removeprefix("  report:   ") for ln in lines if ln.startswith("  report:   ")]
    assert Path(report).is_file() and report.endswith(".html")
    assert "measure-drift" in err and "Traceback" not in err

    # A day outside the data: nothing to measure, and the outcome says what the data covers.
    code, out, err = _run(["--config", cfg, "run", "drift-monitor", "--as-of", "2027-01-04", "-q"], capsys)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert lines[0] == "drift-monitor: completed — insufficient_data", out
    assert any(ln.startswith("  data:     the store's predictions cover 2026-01-05 ") for ln in lines), out
