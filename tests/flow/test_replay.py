"""Policy replay on simulated histories with known drift onsets, through the CLI, the library and the flow.

Sizes: 3,000 simulated users (~2,550 rows a week), 14 weeks, four training weeks and a 1,500-row
test set: the smallest size at which the metric trigger sees the simulator's concept change
(it ramps in over four weeks) within the replayed weeks. With 600 users the oracle (retrain
every week on ~2k rows) did not beat the never-retrained model, so there was no loss to recover.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftline import pipeline
from driftline import replay as rp
from driftline.cli import _common, build_app
from driftline.contract import load_contract
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow
START = pd.Timestamp("2026-01-05")
FIRST, LAST = 6, 13  # the replayed weeks: the bootstrap at week 6 (train weeks 0-3, test week 4)
ONSET = 7


def make_home(root: Path, scenario: str, users: int = 3000, weeks: int = 14) -> Path:
    """A user's home: settings, contract and a store filled with simulated traffic and outcomes."""
    root.mkdir(parents=True)
    sim = simulate(weeks=weeks, users=users, scenarios=scenario, seed=0, start=START.date())
    contract = sim.contract.save(root / "contract.yaml")
    cfg = {
        "home": str(root / "home"),
        "contract": str(contract),
        "model_name": "replay-test",
        "windows": {"train_weeks": 4, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 1},
        "sampling": {"test_size": 1500},
        "training": {"estimator_params": {"max_iter": 20}, "min_train_rows": 100},
        "gates": {"bootstrap_resamples": 200},
    }
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    s = load_settings(root / "driftline.yaml")
    s.ensure_home()
    store = Store.from_settings(s, sim.contract).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    store.dispose()
    return root / "driftline.yaml"


def snapshot(home: Path) -> dict[str, object]:
    """Every table of every SQLite file under ``home`` (rows sorted) and every other file's size."""
    out: dict[str, object] = {}
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.name.endswith(("-wal", "-shm")):
            continue
        rel = str(path.relative_to(home))
        if path.suffix == ".db":
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                names = [r[0] for r in con.execute("select name from sqlite_master where type='table' order by name")]
                out[rel] = {n: sorted(map(repr, con.execute(f'select * from "{n}"'))) for n in names}
            finally:
                con.close()
        else:
            out[rel] = path.stat().st_size
    return out


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = _common.run(build_app(), argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def week_of(report_start: str) -> int:
    return (pd.Timestamp(report_start) - START).days // 7


@pytest.fixture(scope="module")
def concept(tmp_path_factory):
    """The concept-drift home with a real champion, and the CLI replay's JSON report."""
    root = tmp_path_factory.mktemp("concept")
    cfg = make_home(root / "user", f"concept_drift@{ONSET}")
    s = load_settings(cfg)
    c = load_contract(s.contract)
    ctx = pipeline.Context(s, c, Store.from_settings(s, c), ModelRegistry.from_settings(s), "test")
    assert pipeline.run_week(ctx, START + pd.Timedelta(weeks=FIRST, hours=3)).status == "registered"
    ctx.store.dispose()
    return {"cfg": cfg, "settings": s, "contract": c, "root": root}


def test_replay_cli_on_concept_drift(concept, capsys):
    cfg, s = concept["cfg"], concept["settings"]
    before = snapshot(s.home)
    html = concept["root"] / "out" / "replay.html"
    frm, to = START + pd.Timedelta(weeks=FIRST), START + pd.Timedelta(weeks=LAST)
    argv = ["--config", str(cfg), "replay", "--from", f"{frm:%Y-%m-%d}", "--to", f"{to:%Y-%m-%d}"]
    argv += ["--policy", "never", "--policy", "weekly", "--policy", "drift", "--json", "--html", str(html)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert snapshot(s.home) == before  # the real store and registry are unchanged
    report = json.loads(out)
    concept["report"] = report
    p = report["policies"]
    assert list(p) == ["never", "weekly", "drift", "oracle"]
    weeks = [week_of(w) for w in report["weeks"]]
    assert weeks == list(range(FIRST, LAST + 1))
    metric = {name: {week_of(w["start"]): w["metric"] for w in r["weeks"]} for name, r in p.items()}

    # never loses performance after the onset (the new concept ramps in over four weeks)
    late = [w for w in weeks if w >= ONSET + 3]
    assert max(metric["never"][w] for w in late) < metric["never"][FIRST] - 0.05
    assert report["loss_of_never"] > 0
    # weekly retrains every week after the bootstrap
    assert p["weekly"]["retrains"] == len(weeks) - 1
    assert all(w["trained"] for w in p["weekly"]["weeks"])
    # drift retrains only after the onset, fewer times than weekly, and recovers the loss
    retrain_weeks = [week_of(w["start"]) for w in p["drift"]["weeks"][1:] if w["trained"]]
    assert retrain_weeks and min(retrain_weeks) > ONSET
    assert 0 < p["drift"]["retrains"] < p["weekly"]["retrains"]
    assert p["drift"]["recovery"] >= 0.9
    assert p["oracle"]["recovery"] == pytest.approx(1.0)
    assert report["recommended"]["policy"] == "drift"
    assert "retrain_on_schedule: false" in report["recommended"]["yaml"]
    # intervals around each weekly metric
    for w in p["drift"]["weeks"]:
        assert w["low"] <= w["metric"] <= w["high"]

    page = html.read_text()
    assert page.count("data:image/png;base64,") == 2 and "http" not in page.replace("http-equiv", "")


def test_one_policy_alone_replays_like_it_did_among_others(concept):
    """Reuse across policies changes nothing: drift alone gives the same weeks, retrains and metrics."""
    report = concept.get("report")
    assert report is not None, "run with test_replay_cli_on_concept_drift, which replays all policies first"
    s, c = concept["settings"], concept["contract"]
    store = Store.from_settings(s, c)
    r = rp.Replayer(s, c, store, START + pd.Timedelta(weeks=FIRST), START + pd.Timedelta(weeks=LAST))
    try:
        alone = r.run(rp.parse_policy("drift"))
    finally:
        r.close()
        store.dispose()
    together = report["policies"]["drift"]["weeks"]
    assert [w.trained for w in alone.weeks] == [w["trained"] for w in together]
    assert [w.metric["estimate"] for w in alone.weeks] == pytest.approx([w["metric"] for w in together])


def test_stable_traffic_drift_never_retrains_after_the_bootstrap(tmp_path):
    cfg = make_home(tmp_path / "user", "stable")
    s = load_settings(cfg)
    c = load_contract(s.contract)
    store = Store.from_settings(s, c)
    policies = [rp.parse_policy("weekly"), rp.parse_policy("drift")]
    report = rp.replay(s, c, store, START + pd.Timedelta(weeks=FIRST), START + pd.Timedelta(weeks=LAST), policies)
    store.dispose()
    assert report["policies"]["drift"]["retrains"] == 0
    assert report["policies"]["weekly"]["retrains"] == LAST - FIRST


def test_replay_flow(tmp_path):
    from flows.replay import replay

    cfg = make_home(tmp_path / "user", "stable", users=1200, weeks=10)
    html = tmp_path / "flow.html"
    state = replay(
        start="2026-02-16",
        end="2026-03-09",
        policies=["never", "drift:psi_warn=0.15"],
        config=str(cfg),
        html=str(html),
        return_state=True,
    )
    assert state.is_completed(), state.message
    report = state.result()
    assert list(report["policies"]) == ["never", "drift:psi_warn=0.15", "oracle"]
    assert len(report["weeks"]) == 4 and html.exists()
