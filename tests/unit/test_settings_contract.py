"""Settings and contract loading: defaults, overrides, and one-line errors."""

from __future__ import annotations

import pytest

from driftline.contract import load_contract, parse_contract
from driftline.errors import ConfigError
from driftline.settings import load_settings
from tests.conftest import TINY_CONTRACT


def test_defaults_live_under_home(tmp_path):
    s = load_settings()
    assert s.home == (tmp_path / "home").resolve()
    assert s.store_url == f"sqlite:///{s.home / 'store.db'}"
    assert s.mlflow_tracking_uri == f"sqlite:///{s.home / 'mlflow.db'}"
    assert s.drift.psi_warn == 0.1 and s.drift.psi_alert == 0.25 and s.drift.bins == 10
    assert s.gates.primary_metric == "average_precision"


def test_file_env_and_override_precedence(tmp_path, monkeypatch):
    (tmp_path / "driftline.yaml").write_text("model_name: from-file\ndrift:\n  psi_warn: 0.12\n  bins: 8\n")
    s = load_settings()
    assert (s.model_name, s.drift.psi_warn, s.drift.bins) == ("from-file", 0.12, 8)
    monkeypatch.setenv("DRIFTLINE_DRIFT__PSI_WARN", "0.15")
    monkeypatch.setenv("DRIFTLINE_STORE_URL", "sqlite:////tmp/x.db")
    s = load_settings()
    assert s.drift.psi_warn == 0.15 and s.drift.bins == 8 and s.store_url == "sqlite:////tmp/x.db"
    s = load_settings(model_name="override")
    assert s.model_name == "override" and s.drift.psi_warn == 0.15


def test_mlflow_tracking_uri_env_is_honoured(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_settings().mlflow_tracking_uri == "http://127.0.0.1:5000"


def test_config_env_names_the_file(tmp_path, monkeypatch):
    p = tmp_path / "other.yaml"
    p.write_text("model_name: other\n")
    monkeypatch.setenv("DRIFTLINE_CONFIG", str(p))
    assert load_settings().model_name == "other"
    monkeypatch.setenv("DRIFTLINE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: settings file not found"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drift:\n  psi_warn: abc\n", r"driftline.yaml.*field drift.psi_warn: .*valid number.*'abc'"),
        ("drift:\n  psi_warn: 0.3\n", r"field drift: .*psi_warn \(0.3\) must not exceed psi_alert"),
        ("windows:\n  train_weeks: 0\n", r"field windows.train_weeks: .*greater than or equal to 1.*0"),
        ("nonsense: 1\n", r"field nonsense: Extra inputs are not permitted"),
        ("a: [1,\n", r"driftline.yaml: line \d+ is not valid YAML"),
        ("- 1\n- 2\n", r"expected a mapping at the top level, got list"),
    ],
)
def test_invalid_settings_give_one_precise_line(tmp_path, text, expected):
    (tmp_path / "driftline.yaml").write_text(text)
    with pytest.raises(ConfigError, match=expected) as e:
        load_settings()
    assert "\n" not in str(e.value)


def test_contract_views_and_fingerprint(tiny_contract):
    c = tiny_contract
    assert c.numeric == ["tenure_days", "score_hint"]
    assert c.categorical == ["country", "plan"]
    assert c.boolean == ["auto_renew"]
    assert c.key_features == ["country"]
    assert c.row_columns[:3] == ["request_id", "user_id", "event_time"]
    assert c.fingerprint() == parse_contract(TINY_CONTRACT).fingerprint()
    changed = {**TINY_CONTRACT, "features": {**TINY_CONTRACT["features"], "extra": {"type": "numeric"}}}
    assert parse_contract(changed).fingerprint() != c.fingerprint()


def test_contract_yaml_round_trip(tmp_path, tiny_contract):
    p = tiny_contract.save(tmp_path / "c.yaml")
    assert load_contract(p) == tiny_contract


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"features": {"x": {"type": "text"}}}, r"field features.x.type: Input should be 'numeric'.*'text'"),
        ({"features": {"x": {"type": "numeric", "range": [5, 1]}}}, r"features.x.range: .*low 5.0 is above high 1.0"),
        ({"features": {"x": {"type": "categorical", "closed": True}}}, r"closed: true needs a vocabulary"),
        ({"segment": "nope"}, r"segment 'nope' is not one of the features"),
        ({"features": {"user_id": {"type": "numeric"}}}, r"features repeat a reserved column: \['user_id'\]"),
        ({"features": {}}, r"at least one feature is required"),
        ({"features": {"score": {"type": "numeric"}}}, r"\['score'\] are used by driftline's predictions log"),
        ({"target": {"name": "observed_time"}}, r"\['observed_time'\] are used by driftline's predictions log"),
    ],
)
def test_contract_errors_name_the_field(tmp_path, patch, expected):
    import yaml

    data = {**TINY_CONTRACT, **patch}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=expected) as e:
        load_contract(p)
    assert str(e.value).startswith(str(p))


def test_contract_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read contract"):
        load_contract(tmp_path / "nope.yaml")


def test_malformed_environment_value_is_one_line(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_WINDOWS", "{bad")
    with pytest.raises(ConfigError, match=r"^DRIFTLINE_\* environment: .*windows") as e:
        load_settings()
    assert "\n" not in str(e.value)


def test_vocabulary_values_are_read_as_the_data_is_compared():
    from driftline.values import category_value

    data = {
        **TINY_CONTRACT,
        "segment": None,
        "features": {"mcc": {"type": "categorical", "vocabulary": [4111, 5411.0, "x", True]}},
    }
    vocab = parse_contract(data).features["mcc"].vocabulary
    assert vocab == ["4111", "5411", "x", "True"] == [category_value(v) for v in (4111, 5411.0, "x", True)]
