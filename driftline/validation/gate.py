"""The promotion gate on data: does validation or skew block promoting a model?

A pure function of the validation result, the skew report and the contract. It blocks when the
suite failed (any failed expectation, or a batch-level error) or when a ``key`` feature has a
skew finding of severity ``medium`` or ``high``. Skew on other features, low-severity skew on
key features and a missing validation or skew result are warnings: reported, not blocking.
Both results may be given as objects or as their ``to_dict()`` form (as flows pass them on).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from driftline.contract import Contract

BLOCKING_SEVERITIES = ("medium", "high")


@dataclass
class GateResult:
    """The verdict: ``blocked`` with the reasons that block it, plus non-blocking warnings."""

    blocked: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.blocked

    def to_dict(self) -> dict[str, Any]:
        return {"blocked": self.blocked, "reasons": list(self.reasons), "warnings": list(self.warnings)}


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"expected a result object or dict, got {type(obj).__name__}")


def _describe(e: dict[str, Any]) -> str:
    where = f"({e['column']})" if e.get("column") else ""
    count = e.get("unexpected_count")
    extra = f": {count} unexpected" if count else ""
    if e.get("error"):
        extra = f": {e['error']}"
    return f"{e.get('name')}{where}{extra}"


def promotion_gate(
    validation: Any,
    skew: Any,
    contract: Contract,
    *,
    block_severities: Collection[str] = BLOCKING_SEVERITIES,
    warn_levels: Collection[str] = (),
) -> GateResult:
    """Whether validation (ValidationResult or dict) and skew (SkewReport or dict) block promotion.

    ``warn_levels`` names expectation levels (``batch``, ``row``, ``distribution``) whose failures
    are reported as warnings instead of blocking: the weekly flow passes ``("distribution",)``
    because moved distributions are the drift engine's call (retrain), not a reason to stop.
    """
    reasons: list[str] = []
    warnings: list[str] = []
    v = _as_dict(validation)
    if v is None:
        warnings.append("validation was not run")
    else:
        if v.get("batch_error"):
            reasons.append(f"validation: batch unusable: {v['batch_error']}")
        all_failed = [e for e in v.get("expectations", []) if not e.get("success", False)]
        failed = [e for e in all_failed if e.get("level") not in warn_levels]
        warnings += [f"validation warning: {_describe(e)}" for e in all_failed if e.get("level") in warn_levels]
        if failed or (not v.get("success", False) and not all_failed):
            shown = "; ".join(_describe(e) for e in failed[:5])
            more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
            total = len(v.get("expectations", []))
            reasons.append(f"validation failed: {len(failed)} of {total} expectations: {shown}{more}".rstrip(": "))
    s = _as_dict(skew)
    key = set(contract.key_features)
    if s is None:
        warnings.append("skew was not checked")
    else:
        for f in s.get("findings", []):
            feature, kind, severity = f.get("feature"), f.get("kind"), f.get("severity")
            text = (
                f"{kind} skew on {'key ' if feature in key else ''}feature {feature} ({severity}, "
                f"{int(f.get('rows_affected', 0)):,} rows): {f.get('suggested_fix', '')}"
            )
            if feature in key and severity in block_severities:
                reasons.append(text)
            else:
                warnings.append(text)
    return GateResult(blocked=bool(reasons), reasons=reasons, warnings=warnings)
