"""Run logging helpers: artifacts, dataset inputs, serialisation, and the model's content hash.

The hash (:func:`model_hash`) is taken over the model's files as stored, right after logging, and
recorded in driftline's store; :func:`load_verified` loads a version only when its downloaded
files still hash the same, with the serialisation and skops trusted types recorded then (never
the ones a model's own ``MLmodel`` file claims).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import DriftlineError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd


@dataclass(frozen=True)
class DatasetInput:
    """A frame to log as an MLflow dataset input of the run (``context``: training / testing)."""

    frame: pd.DataFrame
    name: str
    context: str
    targets: str | None = None
    source: str | None = None


def _tag_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _as_dataset(item: DatasetInput | tuple, target: str | None) -> DatasetInput:
    if isinstance(item, DatasetInput):
        return item
    if not isinstance(item, tuple) or len(item) not in (3, 4):
        raise DriftlineError("each dataset must be DatasetInput or a tuple (frame, name, context[, targets])")
    frame, name, context = item[:3]
    targets = item[3] if len(item) == 4 else (target if target is not None and target in frame.columns else None)
    return DatasetInput(frame=frame, name=str(name), context=str(context), targets=targets)


def _write_artifacts(root: Path, artifacts: Mapping[str, str | dict | list | Path]) -> None:
    for name, content in artifacts.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DriftlineError(f"artifact name {name!r} must be a relative path inside the run")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if not content.exists():
                raise DriftlineError(f"artifact {name!r}: file {content} not found")
            if content.is_dir():
                shutil.copytree(content, dest)
            else:
                shutil.copyfile(content, dest)
        elif isinstance(content, (dict, list)):
            dest.write_text(json.dumps(content, indent=2, default=str, sort_keys=True))
        elif isinstance(content, str):
            dest.write_text(content)
        else:
            raise DriftlineError(f"artifact {name!r}: expected str, dict, list or Path, got {type(content).__name__}")


def _serialization(pipeline: Any) -> tuple[str, list[str] | None]:
    """skops (safe format) trusting exactly the types of this pipeline; cloudpickle when skops can't."""
    try:
        import skops.io

        data = skops.io.dumps(pipeline)
        return "skops", skops.io.get_untrusted_types(data=data) or None
    except Exception:  # any skops limitation: fall back to cloudpickle
        return "cloudpickle", None


def _pip_requirements(serialization: str) -> list[str]:
    """Pinned requirements of the logged model (MLflow would infer them in a ~3 s subprocess).

    driftline itself is not listed (it is not a published package): a pipeline holding driftline
    transformers needs driftline installed wherever the model is loaded.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    names = ["scikit-learn", "pandas", "numpy", "scipy", serialization]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={dist_version(name)}")
        except PackageNotFoundError:
            continue
    return out


def model_hash(root: Path) -> str:
    """sha256 over every file under ``root``: relative path and content hash, in path order."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())
    if not files:
        raise DriftlineError(f"no model files under {root}")
    for p in files:
        digest = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        h.update(f"{p.relative_to(root).as_posix()}\0{digest.hexdigest()}\n".encode())
    return h.hexdigest()


def load_verified(root: Path, *, expected_sha256: str, serialization: str, trusted_types: list[str], what: str) -> Any:
    """Load the scikit-learn model under ``root`` after checking it is the one driftline registered.

    The content hash must match; the flavor must be scikit-learn in the recorded serialisation.
    skops models load with the trusted types recorded at registration; a cloudpickle model (kept
    only when skops could not save the pipeline) loads only after its bytes were verified, and
    never when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is set to false. Nothing is written to
    ``os.environ``.
    """
    import yaml

    actual = model_hash(root)
    if actual != expected_sha256:
        raise DriftlineError(
            f"{what}: its model files do not match what driftline registered "
            f"(sha256 {actual[:12]}…, recorded {expected_sha256[:12]}…); refusing to load a tampered model"
        )
    try:
        flavors = (yaml.safe_load((root / "MLmodel").read_text()) or {}).get("flavors", {})
    except (OSError, yaml.YAMLError) as e:
        raise DriftlineError(f"{what}: unreadable MLmodel file ({e})") from None
    conf = flavors.get("sklearn")
    if not isinstance(conf, dict):
        raise DriftlineError(f"{what}: not a scikit-learn model (flavors: {', '.join(flavors) or 'none'})")
    fmt = conf.get("serialization_format")
    if fmt != serialization:
        raise DriftlineError(f"{what}: serialised as {fmt!r}, registered as {serialization!r}; refusing to load")
    path = (root / str(conf.get("pickled_model", ""))).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise DriftlineError(f"{what}: model file {conf.get('pickled_model')!r} is missing")
    if fmt == "skops":
        import skops.io

        try:
            return skops.io.load(path, trusted=list(trusted_types))
        except Exception as e:  # an untrusted type, a corrupt file
            raise DriftlineError(f"{what}: skops refused the model ({str(e).splitlines()[0][:200]})") from None
    if fmt == "cloudpickle":
        if os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "").strip().lower() in ("false", "0", "no"):
            raise DriftlineError(f"{what}: MLFLOW_ALLOW_PICKLE_DESERIALIZATION forbids loading a cloudpickle model")
        import cloudpickle

        with path.open("rb") as f:
            return cloudpickle.load(f)
    raise DriftlineError(f"{what}: serialisation {fmt!r} is not one driftline loads")
