"""The story in MLflow, the reports and the weekly-run artifact, from real flow runs: real Prefect (harness),
real MLflow on SQLite, real GX. Every version carries a drift report showing the decision that created it,
its windows and its trend; its description starts with the trigger and the reason."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftline.contract import load_contract
from driftline.registry import ModelRegistry
from driftline.settings import load_settings
from driftline.simulate import simulate
from driftline.store import Store

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-01-05")
MODEL = "story-flow"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def week(n: int) -> pd.Timestamp:
    return START + pd.Timedelta(weeks=n, hours=3)


class Text(HTMLParser):
    """The page's visible text (no markup), to read what a person sees."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def visible(html: str) -> str:
    p = Text()
    p.feed(html)
    return p.text


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three weekly flow runs: the bootstrap (week 4), a quiet week (5) and a forced retrain (6)."""
    from flows.refresh_and_retrain import refresh_and_retrain

    root = tmp_path_factory.mktemp("story")
    sim = simulate(weeks=7, users=1500, scenarios="concept_drift@5", seed=11, start=START.date())
    contract = sim.contract.save(root / "contract.yaml")
    cfg = {
        "home": str(root / "home"),
        "contract": str(contract),
        "model_name": MODEL,
        "windows": {"train_weeks": 3, "test_weeks": 1, "label_delay_days": 7, "backtest_folds": 1},
        "sampling": {"test_size": 1200},
        "training": {"estimator_params": {"max_iter": 30}, "min_train_rows": 100},
        "feedback": {"enabled": False},
        "edge_cases": {"enabled": False},
    }
    (root / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    settings = load_settings(root / "driftline.yaml")
    settings.ensure_home()
    store = Store.from_settings(settings, load_contract(settings.contract)).create()
    store.append_predictions(sim.traffic)
    store.append_outcomes(sim.outcomes)
    states = {}
    for n, force in ((4, False), (5, False), (6, True)):
        states[n] = refresh_and_retrain(
            as_of=week(n).to_pydatetime(), config=str(root / "driftline.yaml"), force_retrain=force, return_state=True
        )
        assert states[n].is_completed(), states[n].message
    return {
        "settings": settings,
        "states": states,
        "registry": ModelRegistry.from_settings(settings),
        "config": str(root / "driftline.yaml"),
    }


def _report(reg: ModelRegistry, version: str) -> str:
    return reg.download_artifact(version, "drift_report.html").read_text()


def _banner(html: str) -> tuple[str, str | None]:
    """(action, trigger) of the decision banner; a week that did not retrain names no trigger."""
    m = re.search(r"<b>decision: (\w+)(?: · trigger (\w+))?</b>", html)
    assert m, "no decision banner"
    return m.group(1), m.group(2)


def test_every_version_carries_a_report_of_the_decision_that_created_it(world):
    reg, s = world["registry"], world["settings"]
    versions = reg.list_versions()
    assert [v.version for v in versions] == ["1", "2"]
    contract = load_contract(s.contract)
    for v in versions:
        html = _report(reg, v.version)
        assert f"<h1>Drift report · {MODEL}</h1>" in html
        assert contract.name != MODEL
        assert _banner(html) == (v.tags["decision"], v.tags["trigger"])
        assert not EXTERNAL.search(html) and "<script" not in html
        # The current window is the week before the run's as-of; its rows are the recent rows.
        as_of = pd.Timestamp(v.tags["as_of"])
        start = as_of - pd.Timedelta(days=s.windows.recent_days)
        assert f"<b>current</b> {start:%Y-%m-%d} → {as_of:%Y-%m-%d}" in html
        # The drift summary tag is short and says something (it was "{}" on every version).
        tag = v.tags["drift_summary"]
        assert tag != "{}" and len(tag) <= 250
        assert f"of {len(contract.features)} features" in tag
        assert len(v.tags["decision_reasons"]) <= 300 and len(v.tags["training_window"]) <= 250
    v1, v2 = versions
    assert v1.tags["trigger"] == "bootstrap" and v2.tags["trigger"] == "manual"
    # The first version's report measures the recent window against its own reference (its test window).
    ref1 = v1.tags["test_window"].split("/")
    assert f"<b>reference</b> {ref1[0][:10]} → {ref1[1][:10]} (this version&#x27;s own reference" in _report(reg, "1")
    # The second one against the champion's reference: version 1's test window.
    assert f"<b>reference</b> {ref1[0][:10]} → {ref1[1][:10]} (champion version 1&#x27;s reference" in _report(reg, "2")


def test_the_trend_plots_each_weeks_champion_metric_from_the_runs(world):
    reg, states = world["registry"], world["states"]
    html = _report(reg, "2")
    titles = re.findall(r"<circle [^>]*><title>(.*?)</title>", html)
    for n in (5, 6):
        summary = states[n].result()
        test_start = summary["window"]["split"]["test_start"][:10]
        champ = summary["champion_metrics"]["average_precision"]
        assert f"champion · week of {test_start}: {champ:.4f}" in titles
    boot = states[4].result()
    first = f"{boot['window']['split']['test_start'][:10]}: {boot['candidate_metrics']['average_precision']:.4f}"
    assert f"candidate · week of {first}" in titles


def test_version_descriptions_tell_why_and_the_model_says_how_to_roll_back(world):
    reg, s, states = world["registry"], world["settings"], world["states"]
    d1 = reg.version_description("1")
    codes1 = reg.read_artifact_json("1", "decision.json")["codes"]
    assert d1.splitlines()[0] == f"First version (bootstrap): {codes1[0]['text']}"
    d2 = reg.version_description("2")
    assert d2.splitlines()[0] == "Retrained by hand: forced retrain"
    gates = reg.read_artifact_json("2", "gates.json")
    cmp = gates["comparison"]
    assert "Challenged champion version 1" in d2
    assert f"paired difference candidate − champion {cmp['estimate']:+.4f}" in d2
    assert f"interval {cmp['low']:.4f} … {cmp['high']:.4f}" in d2
    assert f"**Gates: {'passed' if gates['passed'] else 'failed'}.**" in d2
    test_window = reg.get("2").tags["test_window"].split("/")
    assert f"- test: {test_window[0][:10]} → {test_window[1][:10]} (a 1,200-row" in d2
    summary = states[6].result()
    assert f"{summary['window']['recent_rows']:,} rows)" in d2
    assert "drift_report.html" in d2 and str(Path(summary["reports"]["drift_report"])) in d2
    model = reg._mlflow_backend.client.get_registered_model(MODEL).description
    contract = load_contract(s.contract)
    assert "driftline models rollback" in model and contract.fingerprint() in model
    assert "MLflow's alias editor" in model
    # The registered model's tags stay short: one line for the last move, no history JSON.
    tags = reg._mlflow_backend.client.get_registered_model(MODEL).tags
    assert set(tags) <= {"driftline.last_move"} and all(len(v) <= 500 for v in tags.values())


def test_weekly_run_artifact_links_the_version_and_says_sizes_in_words(world):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    state = world["states"][6]
    summary = state.result()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["weekly-run"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    assert len(found) == 1
    md = found[0].data
    assert f"MLflow version 2: `models:/{MODEL}/2`" in md
    assert summary["registration"]["run_id"] in md
    report = summary["reports"]["drift_report"]
    assert f"`{report}`" in md and Path(report).exists()
    assert f"holds {summary['datasets']['test_rows']:,} rows" in md
    assert "0.000000" not in md and "sample -" not in md
    # The quiet week has its own report on disk, linked the same way.
    quiet = world["states"][5].result()
    assert quiet["reports"]["drift_report"].endswith(f"week-{quiet['window']['split']['test_start'][:10]}-drift.html")
    page = Path(quiet["reports"]["drift_report"]).read_text()
    assert _banner(page) == (quiet["drift"]["action"], None) and quiet["drift"]["trigger"] is None


def test_outside_moves_are_detected_and_recorded_at_the_next_move(world, capsys):
    reg = world["registry"]
    before = reg.alias_version("champion")
    assert reg.outside_moves() == []
    other = "2" if before == "1" else "1"
    reg._mlflow_backend.client.set_registered_model_alias(MODEL, "champion", other)  # as MLflow's UI would
    found = reg.outside_moves()
    assert [(m.alias, m.recorded, m.actual) for m in found] == [("champion", before, other)]
    from driftline.cli import build_app
    from driftline.cli._common import run

    capsys.readouterr()
    assert run(build_app(), ["--config", world["config"], "models", "list"]) == 0
    err = capsys.readouterr().err
    assert f"warning: champion is at version {other} in MLflow but driftline's history has it version {before}" in err
    reg.rollback(to_version=before, reason="undo a move made in the MLflow UI", actor="test", force=True)
    assert reg.outside_moves() == []
    kinds = [(m.kind, m.from_version, m.to_version) for m in reg.history("champion")][-2:]
    assert kinds == [("external", before, other), ("rollback", other, before)]
