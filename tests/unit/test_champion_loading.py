"""The weekly run's champion: missing reference artifacts or a foreign model stop the run in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from driftline import weekly
from driftline.errors import DriftlineError, RefusedError
from driftline.registry import ModelRegistry, Verdict


def _registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "m", tmp_path / "art", store_url=f"sqlite:///{tmp_path / 'store.db'}"
    )


def _register(reg: ModelRegistry, artifacts: dict) -> str:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.uniform(0, 1, 30)})
    y = (x["a"] > 0.5).astype(int)
    return reg.register_candidate(
        verdict=Verdict(gates_passed=True),
        pipeline=LogisticRegression().fit(x, y),
        input_example=x.head(3),
        params={},
        metrics={},
        tags={},
        artifacts=artifacts,
        idempotency_key="k",
    ).version


def test_missing_reference_artifacts_block_the_run(tmp_path, tiny_contract):
    reg = _registry(tmp_path)
    reg.promote(_register(reg, {"contract.yaml": "x"}), reason="test", actor="t")
    with pytest.raises(DriftlineError) as err:
        weekly.load_champion(reg, tiny_contract)
    message = str(err.value)
    assert message.startswith("champion version 1: cannot read its reference artifacts")
    assert "reference_profile.json" in message and "the run stops" in message and "\n" not in message


def test_a_foreign_champion_blocks_the_run(tmp_path, tiny_contract):
    import mlflow.sklearn
    from mlflow import MlflowClient

    reg = _registry(tmp_path)
    _register(reg, {"contract.yaml": "x"})
    with reg._using_store() as fluent:  # plain MLflow, pointed at the same store (and restored after)
        with fluent.start_run():
            info = mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1]], [0, 1]), name="m")
        mv = fluent.register_model(info.model_uri, "m")
    MlflowClient(reg.tracking_uri).set_registered_model_alias("m", "champion", mv.version)  # the UI's pencil
    with pytest.raises(RefusedError, match=f"version {mv.version} of 'm' was not registered by driftline"):
        weekly.load_champion(reg, tiny_contract)


def test_reading_reference_artifacts_leaves_nothing_in_the_temp_folder(tmp_path, tiny_contract, monkeypatch):
    """Downloads for a JSON read or the champion's references are removed, even when they fail to parse."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    reg = _registry(tmp_path)
    version = _register(reg, {"contract.json": {"name": "c"}, "reference_profile.json": {"not": "a profile"}})
    reg.promote(version, reason="test", actor="t")
    assert reg.read_artifact_json(version, "contract.json") == {"name": "c"}
    with pytest.raises(DriftlineError, match="reference artifacts"):
        weekly.load_champion(reg, tiny_contract)
    assert sorted(p.name for p in scratch.iterdir() if p.name.startswith("driftline-artifact-")) == []
