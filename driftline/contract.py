"""The feature contract: the single source of truth for columns.

Training, validation, drift and serving all read the same contract, so a change of column
or vocabulary is made in one place. A contract is a YAML file; see ``examples/contract.yaml``
and ``driftline contract infer`` for drafting one from data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftline.errors import ConfigError, describe_validation_error

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

FeatureType = Literal["numeric", "categorical", "boolean"]

# Columns the predictions log and the outcomes table hold besides the contract's own.
LOG_COLUMNS = ("model_name", "model_version", "variant", "score", "predicted_label", "latency_ms", "observed_time")


class DriftThresholds(BaseModel):
    """Per-feature PSI bands that override the global ones."""

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(default=None, ge=0)
    alert: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if self.warn is not None and self.alert is not None and self.warn > self.alert:
            raise ValueError(f"warn ({self.warn}) must not exceed alert ({self.alert})")
        return self


class Feature(BaseModel):
    """One model input column: its type and what values are acceptable."""

    model_config = ConfigDict(extra="forbid")

    type: FeatureType
    nullable: bool = False
    range: tuple[float, float] | None = None
    range_soft: bool = Field(
        default=False,
        description="An unreviewed range (drafted by 'contract infer'): values outside are counted, not quarantined.",
    )
    null_values: list[str] | None = Field(
        default=None,
        description="Text read as missing in this column (replaces the contract's null_values for it).",
    )
    vocabulary: list[str] | None = None
    closed: bool = False
    key: bool = False
    drift: DriftThresholds | None = None
    description: str | None = None
    aliases: dict[str, str] | None = Field(
        default=None,
        description="Reviewed renames: a served value on the left is read as the value on the right everywhere.",
    )

    @field_validator("range")
    @classmethod
    def _range_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"range low {v[0]} is above high {v[1]}")
        return v

    @field_validator("vocabulary", mode="before")
    @classmethod
    def _vocab_as_str(cls, v: Any) -> Any:
        # The same text data values are compared as: a YAML 4111.0 means the code "4111".
        if isinstance(v, list):
            from driftline.values import category_value

            return [category_value(x) for x in v]
        return v

    @field_validator("null_values", mode="before")
    @classmethod
    def _nulls_as_str(cls, v: Any) -> Any:
        return _null_spellings(v)

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases_as_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            from driftline.values import category_value

            return {category_value(k): category_value(x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.aliases:
            if self.type != "categorical":
                raise ValueError(f"aliases are only for categorical features, not {self.type}")
            if len(self.aliases) > 10_000:
                raise ValueError(f"at most 10,000 aliases per feature, got {len(self.aliases)}")
            chained = sorted(set(self.aliases) & set(self.aliases.values()))
            if chained:
                raise ValueError(f"an alias must map to a final value, not to another alias: {chained[:3]}")
            if self.vocabulary:
                unknown = sorted(set(self.aliases.values()) - set(self.vocabulary))
                if unknown:
                    raise ValueError(f"aliases map to values outside the vocabulary: {unknown[:3]}")
        if self.range_soft and self.range is None:
            raise ValueError("range_soft: true needs a range")
        if self.type != "numeric" and self.range is not None:
            raise ValueError(f"range is only for numeric features, not {self.type}")
        if self.type == "numeric" and self.vocabulary is not None:
            raise ValueError("vocabulary is only for categorical features, not numeric")
        if self.closed and not self.vocabulary:
            raise ValueError("closed: true needs a vocabulary")
        return self


class Target(BaseModel):
    """The label column and which of its values counts as positive."""

    model_config = ConfigDict(extra="forbid")

    name: str
    positive: str | int | bool = 1


class Contract(BaseModel):
    """Columns of a tabular classification problem and the rules their values follow."""

    model_config = ConfigDict(extra="forbid")

    name: str = "model"
    entity_id: str
    request_id: str = "request_id"
    timestamp: str
    target: Target
    segment: str | None = None
    range_tolerance: float = Field(default=0.0, ge=0, description="Relative slack on numeric ranges when validating.")
    null_values: list[str] | None = Field(
        default=None,
        description="Text read as missing in every contract column (default: none; only an empty CSV field is).",
    )
    features: dict[str, Feature]

    @field_validator("null_values", mode="before")
    @classmethod
    def _nulls_as_str(cls, v: Any) -> Any:
        return _null_spellings(v)

    @model_validator(mode="after")
    def _names(self) -> Contract:
        if not self.features:
            raise ValueError("features: at least one feature is required")
        reserved = {self.entity_id, self.request_id, self.timestamp, self.target.name}
        if len(reserved) != 4:
            raise ValueError("entity_id, request_id, timestamp and target must be distinct columns")
        clash = reserved & set(self.features)
        if clash:
            raise ValueError(f"features repeat a reserved column: {sorted(clash)}")
        taken = sorted((reserved | set(self.features)) & set(LOG_COLUMNS))
        if taken:
            raise ValueError(
                f"column name(s) {taken} are used by driftline's predictions log ({', '.join(LOG_COLUMNS)}); "
                "rename them in the data and the contract"
            )
        if self.segment is not None and self.segment not in self.features:
            raise ValueError(f"segment {self.segment!r} is not one of the features")
        return self

    # -- views -------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def names_of(self, kind: FeatureType) -> list[str]:
        """Feature names of one type, in contract order."""
        return [n for n, f in self.features.items() if f.type == kind]

    @property
    def numeric(self) -> list[str]:
        return self.names_of("numeric")

    @property
    def categorical(self) -> list[str]:
        return self.names_of("categorical")

    @property
    def boolean(self) -> list[str]:
        return self.names_of("boolean")

    @property
    def key_features(self) -> list[str]:
        return [n for n, f in self.features.items() if f.key]

    @property
    def row_columns(self) -> list[str]:
        """Columns a logged request carries: ids, time and features (no label)."""
        return [self.request_id, self.entity_id, self.timestamp, *self.features]

    def fingerprint(self) -> str:
        """Stable hash of the contract's whole content (tagged on every model version).

        Fields added after contracts were first fingerprinted (:data:`_LATER_FIELDS`) count only
        when set, so a contract that does not use them keeps its fingerprint (and with it its
        profiles' and registrations' idempotency keys).
        """
        payload = json.dumps(self._dump(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _dump(self, **kwargs: Any) -> dict[str, Any]:
        """``model_dump(mode="json")`` without later fields that hold their default."""
        data = self.model_dump(mode="json", **kwargs)
        for key, default in _LATER_FIELDS["contract"].items():
            if key in data and data[key] == default:
                del data[key]
        for feature in data["features"].values():
            for key, default in _LATER_FIELDS["feature"].items():
                if key in feature and feature[key] == default:
                    del feature[key]
        return data

    def null_values_of(self, column: str) -> frozenset[str]:
        """Text read as missing in ``column``: its feature's ``null_values`` if set, else the contract's."""
        f = self.features.get(column)
        values = f.null_values if f is not None and f.null_values is not None else self.null_values
        return frozenset(values or ())

    def apply_null_values(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the contract's null spellings (``null_values:``) made missing.

        The same frame comes back when none apply. Contract columns only (ids, timestamp, target,
        features); a value matches when its canonical text (:func:`driftline.values.category_text`,
        stripped: ``-999.0`` is ``"-999"``) is listed. Ingest and every data command read files
        through it.
        """
        if self.null_values is None and not any(f.null_values for f in self.features.values()):
            return frame
        import pandas as pd

        from driftline.values import category_text

        out = frame
        for name in [self.request_id, self.entity_id, self.timestamp, self.target.name, *self.features]:
            nulls = self.null_values_of(name)
            if not nulls or name not in frame.columns:
                continue
            col = frame[name]
            if pd.api.types.is_datetime64_any_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                continue
            hit = category_text(col, strip=True).isin(nulls).fillna(False).to_numpy(dtype=bool)
            if hit.any():
                if out is frame:
                    out = frame.copy()
                out[name] = col.astype(object).mask(hit, None)
        return out

    def schema_fingerprint(self) -> str:
        """Hash of what shapes the data: id, time and target columns, feature names and types.

        Thresholds, vocabularies, ranges, ``key`` flags and descriptions are left out, so
        tuning them keeps stored reference profiles usable (drift reads them from the contract
        in force); renaming, adding or retyping a column does not.
        """
        shape = {
            "ids": [self.entity_id, self.request_id, self.timestamp, self.target.name],
            "features": {n: f.type for n, f in self.features.items()},
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def apply_aliases(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with every categorical feature's aliases applied (the same frame when none apply).

        The one code path for reviewed renames: training, scoring, serving, validation, drift
        and skew read values through it, so ``United States`` is ``US`` everywhere once the
        contract says so. Values are compared as category text (``driftline.values``).
        """
        mapped = {n: f.aliases for n, f in self.features.items() if f.aliases and n in frame.columns}
        if not mapped:
            return frame
        from driftline.values import category_text

        out = frame.copy()
        for name, aliases in mapped.items():
            text = category_text(out[name])
            hit = text.isin(aliases.keys()).fillna(False).astype(bool)
            if hit.any():
                col = out[name].astype(object)
                col[hit] = text[hit].map(aliases)
                out[name] = col
        return out

    def with_aliases(self, mappings: dict[str, dict[str, str]]) -> Contract:
        """A copy with ``mappings`` (feature -> {served: canonical}) added to the features' aliases."""
        data = self.model_dump(mode="json")
        for name, mapping in mappings.items():
            if name not in data["features"]:
                raise ConfigError(f"contract {self.name!r} has no feature {name!r} to alias")
            current = dict(data["features"][name].get("aliases") or {})
            current.update({str(k): str(v) for k, v in mapping.items()})
            data["features"][name]["aliases"] = current
        return parse_contract(data, f"contract {self.name!r} with aliases")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self._dump(exclude_none=True), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_yaml())
        return p


_LATER_FIELDS: dict[str, dict[str, Any]] = {
    "contract": {"null_values": None},
    "feature": {"range_soft": False, "null_values": None},
}
"""Fields added after contracts were first fingerprinted, with the default that leaves them out."""


def _null_spellings(v: Any) -> Any:
    """``null_values`` as canonical text (a YAML ``-999`` means the text ``"-999"``); empty text is dropped.

    Empty text is missing already (an empty CSV field), so ``""`` in the list changes nothing.
    """
    if isinstance(v, str):
        raise ValueError("null_values must be a list of text values, e.g. [NA, 'n/a']")
    if isinstance(v, list):
        from driftline.values import category_value

        out: list[str] = []
        for x in v:
            if x is None or isinstance(x, bool):
                raise ValueError(f"null_values: YAML read {x!r} as {'null' if x is None else 'a boolean'}; quote it")
            if isinstance(x, dict | list):
                raise ValueError(f"null_values must list text values, got {type(x).__name__}")
            text = category_value(x).strip()
            if text and text not in out:
                out.append(text)
        return out
    return v


def parse_contract(data: Any, source: str = "contract") -> Contract:
    """Validate a mapping as a contract; errors name the source, the field and the value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Contract.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(source, e)) from None


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract YAML file (a regular file of at most 1 MiB, no YAML aliases)."""
    from driftline.settings import read_yaml

    return parse_contract(read_yaml(path, "contract"), str(path))
