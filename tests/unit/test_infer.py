"""`driftline contract infer` drafts a contract a user can bring their own data with."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from driftline.cli import _common, build_app
from driftline.contract import parse_contract
from driftline.errors import InputError
from driftline.infer import infer_contract

FRAME = pd.DataFrame(
    {
        "request_id": ["a", "b", "c", "d"],
        "account": ["x", "y", "x", "z"],
        "ts": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]),
        "label": [0, 1, 0, 1],
        "amount": [10.0, 20.0, None, 30.0],
        "segment": ["retail", "smb", "retail", "smb"],
        "active": ["yes", "no", "yes", "yes"],
        "clicks": [0, 5, 10, 20],
    }
)


def test_types_ranges_vocabularies_and_nullability():
    c = infer_contract(FRAME, target="label", timestamp="ts", entity_id="account")
    assert c.request_id == "request_id" and c.target.positive == 1
    assert list(c.features) == ["amount", "segment", "active", "clicks"]
    amount, segment, active, clicks = (c.features[n] for n in c.features)
    assert (amount.type, amount.nullable, amount.range) == ("numeric", True, (8.0, 32.0))  # 10% margin of 20
    assert (segment.type, segment.vocabulary, segment.closed) == ("categorical", ["retail", "smb"], False)
    assert active.type == "boolean" and not active.nullable
    assert clicks.range == (0.0, 22.0)  # non-negative data keeps a non-negative floor


def test_vocabulary_cap_and_round_trip():
    frame = FRAME.assign(segment=[f"s{i}" for i in range(4)])
    c = infer_contract(frame, target="label", timestamp="ts", entity_id="account", vocab_cap=3)
    assert c.features["segment"].vocabulary is None
    assert parse_contract(yaml.safe_load(c.to_yaml())) == c


def test_errors_name_the_column():
    with pytest.raises(InputError, match="--target column 'nope' is not in the file"):
        infer_contract(FRAME, target="nope", timestamp="ts", entity_id="account")
    with pytest.raises(InputError, match="no request id column"):
        infer_contract(FRAME.drop(columns="request_id"), target="label", timestamp="ts", entity_id="account")


def test_cli_prints_yaml_that_ingest_accepts(tmp_path, capsys):
    path = tmp_path / "data.parquet"
    FRAME.to_parquet(path)
    code = _common.run(
        build_app(), ["contract", "infer", str(path), "--target", "label", "--timestamp", "ts", "--id", "account"]
    )
    assert code == 0
    out = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(out)
    assert _common.run(build_app(), ["ingest", str(path), "--contract", str(tmp_path / "c.yaml"), "--json"]) == 0
    assert '"stored": 4' in capsys.readouterr().out


def test_text_labels_need_positive_and_other_times_are_skipped():
    frame = FRAME.assign(label=["churn", "stay", "stay", "churn"], signup=pd.to_datetime(["2025-01-01"] * 4))
    with pytest.raises(InputError, match=r"--positive is needed: .*'label'.*\(churn, stay\)"):
        infer_contract(frame, target="label", timestamp="ts", entity_id="account")
    c = infer_contract(frame, target="label", timestamp="ts", entity_id="account", positive="churn")
    assert c.target.positive == "churn" and "signup" not in c.features
    with pytest.raises(InputError, match="no rows"):
        infer_contract(frame.head(0), target="label", timestamp="ts", entity_id="account")
