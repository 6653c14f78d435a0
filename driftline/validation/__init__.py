"""Validation and training–serving skew: GX suites from the contract, quarantine, skew, the gate.

Names are imported lazily on first use (PEP 562), so ``import driftline.validation`` costs
nothing and the CLI stays fast; Great Expectations (about 4 s to import) and pycountry are
imported only inside the functions that need them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "GateResult": "gate",
    "promotion_gate": "gate",
    "validate_and_store": "quarantine",
    "SkewFinding": "skew",
    "SkewReport": "skew",
    "SkewThresholds": "skew",
    "skew_check": "skew",
    "DEFAULT_TOLERANCE": "suite",
    "NumericReference": "suite",
    "build_suite": "suite",
    "numeric_reference": "suite",
    "ExpectationOutcome": "validate",
    "ValidationResult": "validate",
    "run_suite": "validate",
    "validate_frame": "validate",
}

__all__ = [
    "DEFAULT_TOLERANCE",
    "ExpectationOutcome",
    "GateResult",
    "NumericReference",
    "SkewFinding",
    "SkewReport",
    "SkewThresholds",
    "ValidationResult",
    "build_suite",
    "numeric_reference",
    "promotion_gate",
    "run_suite",
    "skew_check",
    "validate_and_store",
    "validate_frame",
]

if TYPE_CHECKING:
    from driftline.validation.gate import GateResult, promotion_gate
    from driftline.validation.quarantine import validate_and_store
    from driftline.validation.skew import SkewFinding, SkewReport, SkewThresholds, skew_check
    from driftline.validation.suite import DEFAULT_TOLERANCE, NumericReference, build_suite, numeric_reference
    from driftline.validation.validate import ExpectationOutcome, ValidationResult, run_suite, validate_frame


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'driftline.validation' has no attribute {name!r}")
    value = getattr(import_module(f"driftline.validation.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
