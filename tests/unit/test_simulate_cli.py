"""``driftline simulate --to-store`` says what it stored: the requests and their outcomes."""

from __future__ import annotations

import json

from driftline.cli import _common, build_app


def test_to_store_reports_predictions_and_outcomes(tmp_path, capsys):
    cfg = tmp_path / "driftline.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\n")
    argv = ["--config", str(cfg), "simulate", "--weeks", "1", "--users", "60", "--out", str(tmp_path / "sim")]
    assert _common.run(build_app(), [*argv, "--to-store", "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)["store"]
    assert stored["predictions_stored"] > 0 and stored["outcomes_stored"] > 0
    assert _common.run(build_app(), [*argv, "--seed", "1", "--to-store"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  stored ")]
    assert line.startswith("  stored ") and " predictions and " in line and " outcomes in sqlite:///" in line
    counts = [int(w.replace(",", "")) for w in line.split() if w.replace(",", "").isdigit()]
    assert len(counts) == 2 and all(n > 0 for n in counts)
