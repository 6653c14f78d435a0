"""The model registry: MLflow versions, the champion switch, alias history and provenance.

``core`` holds :class:`ModelRegistry`; ``backends`` the MLflow client and REST calls;
``history`` the store tables (alias history, registration records); ``runs`` run logging,
content hashes and verified loading.
"""

from driftline.registry.core import (
    CHECK_TAG_PREFIXES,
    DEFAULT_ALIASES,
    FAILED_VALUES,
    MODEL_ARTIFACT_NAME,
    RUN_TAG_KEY,
    RUN_TAG_MODEL_URI,
    TAG_GATES_PASSED,
    TAG_IDEMPOTENCY,
    TAG_LAST_MOVE,
    TAG_PRIMARY_METRIC,
    TAG_TRIGGER,
    ModelRegistry,
    RegisteredVersion,
    Verdict,
    VersionInfo,
    promotion_refusals,
    refusal_reasons,
)
from driftline.registry.history import AliasMove, Registration, RegistryStore, previous_holder
from driftline.registry.runs import DatasetInput

__all__ = [
    "CHECK_TAG_PREFIXES",
    "DEFAULT_ALIASES",
    "FAILED_VALUES",
    "MODEL_ARTIFACT_NAME",
    "RUN_TAG_KEY",
    "RUN_TAG_MODEL_URI",
    "TAG_GATES_PASSED",
    "TAG_IDEMPOTENCY",
    "TAG_LAST_MOVE",
    "TAG_PRIMARY_METRIC",
    "TAG_TRIGGER",
    "AliasMove",
    "DatasetInput",
    "ModelRegistry",
    "RegisteredVersion",
    "Registration",
    "RegistryStore",
    "Verdict",
    "VersionInfo",
    "previous_holder",
    "promotion_refusals",
    "refusal_reasons",
]
