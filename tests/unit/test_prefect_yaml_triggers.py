"""prefect.yaml's event triggers, templated by Prefect's own deploy code: each matches its own model only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _built_trigger(deployment: str, model: str):
    """The deployment's trigger as ``prefect deploy`` builds it, with the build step naming ``model``."""
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.utilities.templating import apply_values

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [dep] = [d for d in spec["deployments"] if d["name"] == deployment]
    [trig] = dep["triggers"]
    params = trig.pop("parameters")
    templated = apply_values(trig, {"driftline-model": {"stdout": model}}, warn_on_notset=False)
    [built] = _initialize_deployment_triggers(deployment, [{**templated, "parameters": params}])
    return built


@pytest.mark.parametrize(
    ("deployment", "event"),
    [("retrain-on-drift", "driftline.drift.alert"), ("rollout", "driftline.challenger.registered")],
)
def test_a_trigger_matches_its_own_models_resource_and_no_other(deployment, event):
    from prefect.events.schemas.events import Resource

    built = _built_trigger(deployment, "churn-a")
    assert built.expect == {event}
    assert built.match.model_dump() == {"prefect.resource.id": "driftline.model.churn-a"}
    assert "churn-a" in built.description

    def resource(model: str) -> Resource:
        return Resource({"prefect.resource.id": f"driftline.model.{model}", "prefect.resource.name": model})

    assert built.match.matches(resource("churn-a"))
    for other in ("churn-b", "churn-a-2", "churn"):
        assert not built.match.matches(resource(other)), other


def test_the_build_step_names_the_model_or_stops_the_deploy_in_one_line(tmp_path):
    """The ``driftline-model`` step: the model name on stdout, or one line on stderr and a non-zero exit."""
    import os
    import subprocess
    import sys

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    steps = [s["prefect.deployments.steps.run_shell_script"] for s in spec["build"]]
    [step] = [s for s in steps if s["id"] == "driftline-model"]
    assert step["shell"] is True and len(step["script"].splitlines()) == 1  # Prefect runs each line on its own
    good = tmp_path / "driftline.yaml"
    good.write_text("model_name: churn-a\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DRIFTLINE_MODEL_NAME", None)
    for config, code, out in ((good, 0, "churn-a\n"), (tmp_path / "missing.yaml", 1, "")):
        script = step["script"].replace("{{ driftline-config.stdout }}", str(config))
        done = subprocess.run(script, shell=True, capture_output=True, text=True, env=env, timeout=120)
        assert (done.returncode, done.stdout) == (code, out), done.stderr
    assert done.stderr.count("\n") == 1 and "cannot read the settings" in done.stderr and "missing.yaml" in done.stderr
