"""The reference profile: everything later windows are compared against, without the raw data.

``fit_profile(reference, contract, settings)`` learns once, from the reference only:

- numeric features: ``settings.bins`` quantile edges (``np.quantile(..., method="inverted_cdf")``
  of the finite reference values, so every edge is a value that occurs; repeated edges from
  ties are merged, so a constant column gets one edge and two bins), the reference min and max,
  and counts over the bins ``(-inf, e1], ..., (ek, +inf]`` plus a ``missing`` bucket;
- categorical and boolean features: the vocabulary (values seen in the reference, most
  frequent first, then contract vocabulary values not seen), counts per value plus an
  ``unseen`` and a ``missing`` bucket;
- optionally the model score (same bins as a numeric feature, and the predicted-positive
  count at the deployed threshold), the label base rate, reference performance, and the
  same counts per value of the contract's segment column for segments with at least
  ``settings.segment_min_rows`` rows.

The JSON form is versioned (``format``/``version``) and carries the contract's fingerprint so
a profile cannot be used with another contract by accident. Floats are written with Python's
shortest round-trip repr, so ``Profile.from_json(p.to_json()) == p`` exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.drift.counts import canonical, count_window, factorize, numeric_values
from driftline.errors import InputError
from driftline.settings import DriftSettings

FORMAT = "driftline.profile"
VERSION = 1
Kind = Literal["numeric", "categorical", "boolean"]


def _num(x: float) -> str:
    return f"{x:.4g}"


@dataclass(eq=False)
class FeatureProfile:
    """One feature's buckets and reference counts.

    Bucket order: numeric ``[bin 0 .. bin k, missing]``; categorical/boolean
    ``[vocabulary..., unseen, missing]``.
    """

    name: str
    kind: Kind
    counts: np.ndarray
    edges: np.ndarray | None = None
    vocabulary: list[str] | None = None
    low: float | None = None
    high: float | None = None

    @property
    def n_buckets(self) -> int:
        if self.kind == "numeric":
            assert self.edges is not None
            return len(self.edges) + 2
        assert self.vocabulary is not None
        return len(self.vocabulary) + 2

    @property
    def missing_index(self) -> int:
        return self.n_buckets - 1

    @property
    def unseen_index(self) -> int:
        """Index of the unseen bucket (categorical and boolean only)."""
        assert self.vocabulary is not None
        return len(self.vocabulary)

    @property
    def value_slice(self) -> slice:
        """The ordered value bins (numeric) or vocabulary buckets, without unseen/missing."""
        if self.kind == "numeric":
            return slice(0, self.n_buckets - 1)
        return slice(0, self.unseen_index)

    @cached_property
    def search_edges(self) -> np.ndarray:
        """Inner edges plus +inf, for one ``searchsorted`` pass that also places NaN last."""
        assert self.edges is not None
        return np.append(self.edges, np.inf)

    @cached_property
    def vocab_index(self) -> dict[str, int]:
        assert self.vocabulary is not None
        return {v: i for i, v in enumerate(self.vocabulary)}

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    def labels(self) -> list[str]:
        """Human-readable bucket names, in bucket order."""
        if self.kind == "numeric":
            assert self.edges is not None
            e = [float(x) for x in self.edges]
            if not e:
                return ["all values", "missing"]
            out = [f"≤ {_num(e[0])}"]
            out += [f"({_num(a)}, {_num(b)}]" for a, b in pairwise(e)]
            out.append(f"> {_num(e[-1])}")
            return [*out, "missing"]
        assert self.vocabulary is not None
        return [*self.vocabulary, "unseen", "missing"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "counts": [int(c) for c in self.counts]}
        if self.kind == "numeric":
            assert self.edges is not None
            d["edges"] = [float(x) for x in self.edges]
            d["low"] = self.low
            d["high"] = self.high
        else:
            d["vocabulary"] = list(self.vocabulary or [])
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> FeatureProfile:
        kind = d["kind"]
        counts = np.asarray(d["counts"], dtype=np.int64)
        if kind == "numeric":
            fp = cls(name, kind, counts, edges=np.asarray(d["edges"], dtype=np.float64), low=d["low"], high=d["high"])
        else:
            fp = cls(name, kind, counts, vocabulary=[str(v) for v in d["vocabulary"]])
        if len(counts) != fp.n_buckets:
            raise ValueError(f"feature {name!r}: {len(counts)} counts for {fp.n_buckets} buckets")
        return fp


@dataclass(eq=False)
class ScoreProfile:
    """The model score's bins and the reference predicted-positive count."""

    column: str
    feature: FeatureProfile
    threshold: float
    scored: int
    predicted_positive: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "threshold": self.threshold,
            "scored": self.scored,
            "predicted_positive": self.predicted_positive,
            **self.feature.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreProfile:
        fp = FeatureProfile.from_dict(d["column"], d)
        return cls(d["column"], fp, float(d["threshold"]), int(d["scored"]), int(d["predicted_positive"]))


@dataclass(eq=False)
class LabelProfile:
    """The reference label base rate."""

    column: str
    positive: str | int | bool
    labelled: int
    positives: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "positive": self.positive,
            "labelled": self.labelled,
            "positives": self.positives,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelProfile:
        return cls(d["column"], d["positive"], int(d["labelled"]), int(d["positives"]))


@dataclass(eq=False)
class SegmentEntry:
    """Reference counts within one segment value, on the global buckets."""

    n_rows: int
    features: dict[str, np.ndarray]
    score: np.ndarray | None = None


@dataclass(eq=False)
class SegmentProfile:
    """Per-segment reference counts for segments with at least ``min_rows`` rows."""

    column: str
    min_rows: int
    values: dict[str, SegmentEntry] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "min_rows": self.min_rows,
            "values": {
                k: {
                    "n_rows": v.n_rows,
                    "features": {f: [int(c) for c in a] for f, a in v.features.items()},
                    "score": None if v.score is None else [int(c) for c in v.score],
                }
                for k, v in self.values.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentProfile:
        values = {
            k: SegmentEntry(
                int(v["n_rows"]),
                {f: np.asarray(a, dtype=np.int64) for f, a in v["features"].items()},
                None if v["score"] is None else np.asarray(v["score"], dtype=np.int64),
            )
            for k, v in d["values"].items()
        }
        return cls(d["column"], int(d["min_rows"]), values)


@dataclass(eq=False)
class Profile:
    """A fitted reference profile; compare later windows against it with :func:`compare`."""

    contract_name: str
    contract_fingerprint: str
    n_rows: int
    bins: int
    features: dict[str, FeatureProfile]
    key_features: list[str] = field(default_factory=list)
    thresholds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    score: ScoreProfile | None = None
    label: LabelProfile | None = None
    performance: dict[str, Any] | None = None
    segments: SegmentProfile | None = None
    version: int = VERSION

    def with_contract(self, contract: Contract) -> Profile:
        """This profile with the thresholds and key flags of the contract now in force."""
        import dataclasses

        self.check_contract(contract)
        thresholds = {
            n: {"warn": f.drift.warn, "alert": f.drift.alert} for n, f in contract.features.items() if f.drift
        }
        return dataclasses.replace(self, key_features=list(contract.key_features), thresholds=thresholds)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "contract": {"name": self.contract_name, "fingerprint": self.contract_fingerprint},
            "n_rows": self.n_rows,
            "bins": self.bins,
            "key_features": list(self.key_features),
            "thresholds": self.thresholds,
            "features": {n: f.to_dict() for n, f in self.features.items()},
            "score": None if self.score is None else self.score.to_dict(),
            "label": None if self.label is None else self.label.to_dict(),
            "performance": self.performance,
            "segments": None if self.segments is None else self.segments.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any, source: str = "profile") -> Profile:
        """Rebuild a profile; raise InputError (one line) on anything that is not one."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"{source}: not a driftline profile (missing format {FORMAT!r})")
        if d.get("version") != VERSION:
            raise InputError(f"{source}: profile version {d.get('version')!r} is not supported (expected {VERSION})")
        try:
            return cls(
                contract_name=d["contract"]["name"],
                contract_fingerprint=d["contract"]["fingerprint"],
                n_rows=int(d["n_rows"]),
                bins=int(d["bins"]),
                features={n: FeatureProfile.from_dict(n, f) for n, f in d["features"].items()},
                key_features=list(d.get("key_features", [])),
                thresholds=dict(d.get("thresholds", {})),
                score=None if d.get("score") is None else ScoreProfile.from_dict(d["score"]),
                label=None if d.get("label") is None else LabelProfile.from_dict(d["label"]),
                performance=d.get("performance"),
                segments=None if d.get("segments") is None else SegmentProfile.from_dict(d["segments"]),
                version=int(d["version"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{source}: malformed profile ({type(e).__name__}: {e})") from None

    @classmethod
    def from_json(cls, text: str, source: str = "profile") -> Profile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}: not valid JSON (line {e.lineno}: {e.msg})") from None
        return cls.from_dict(data, source)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json())
        return p

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise InputError(f"{p}: cannot read profile ({e.strerror or e})") from None
        return cls.from_json(text, str(p))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def check_contract(self, contract: Contract) -> None:
        """Raise InputError when the profile was fitted for other columns (see ``schema_fingerprint``)."""
        fp = contract.schema_fingerprint()
        if fp != self.contract_fingerprint:
            raise InputError(
                f"profile was fitted for contract {self.contract_name!r} (fingerprint {self.contract_fingerprint}), "
                f"not for contract {contract.name!r} (fingerprint {fp}); refit it with 'driftline profile'"
            )


# -- fitting ---------------------------------------------------------------------------------


def _numeric_profile(name: str, values: np.ndarray, bins: int) -> FeatureProfile:
    finite = values[np.isfinite(values)]
    if finite.size:
        probs = np.arange(1, bins) / bins  # exact k/bins, unlike linspace
        edges = np.unique(np.quantile(finite, probs, method="inverted_cdf"))
        low, high = float(finite.min()), float(finite.max())
    else:
        edges, low, high = np.empty(0, dtype=np.float64), None, None
    return FeatureProfile(name, "numeric", np.zeros(len(edges) + 2, np.int64), edges=edges, low=low, high=high)


def _categorical_profile(name: str, kind: Kind, series: pd.Series, vocabulary: list[str] | None) -> FeatureProfile:
    if kind == "boolean":
        vocab = ["false", "true"]
    else:
        codes, uniques = factorize(series)
        per = np.bincount(codes + 1, minlength=len(uniques) + 1)[1:]
        totals: dict[str, int] = {}
        for u, c in zip(uniques, per, strict=True):
            key = canonical(u)
            totals[key] = totals.get(key, 0) + int(c)
        vocab = sorted((k for k, c in totals.items() if c > 0), key=lambda k: (-totals[k], k))
        seen = set(vocab)
        vocab += [v for v in (vocabulary or []) if v not in seen]
    return FeatureProfile(name, kind, np.zeros(len(vocab) + 2, np.int64), vocabulary=vocab)


def fit_profile(
    reference: pd.DataFrame,
    contract: Contract,
    settings: DriftSettings,
    score_column: str | None = None,
    label_column: str | None = None,
    *,
    threshold: float = 0.5,
    segment_column: str | None = None,
    source: str = "reference",
) -> Profile:
    """Learn bins, vocabularies and reference counts from ``reference`` (see module docstring).

    ``segment_column`` defaults to the contract's segment. With both ``score_column`` and
    ``label_column``, the reference performance at ``threshold`` is stored as well.
    """
    if len(reference) == 0:
        raise InputError(f"{source}: no rows to fit a profile on")
    missing = [c for c in contract.features if c not in reference.columns]
    if missing:
        raise InputError(f"{source}: missing feature column(s): {', '.join(missing)}")
    for col, what in ((score_column, "score"), (label_column, "label")):
        if col is not None and col not in reference.columns:
            raise InputError(f"{source}: {what} column {col!r} not found")
    feats: dict[str, FeatureProfile] = {}
    thresholds: dict[str, dict[str, float | None]] = {}
    for name, spec in contract.features.items():
        if spec.type == "numeric":
            feats[name] = _numeric_profile(name, numeric_values(reference[name]), settings.bins)
        else:
            feats[name] = _categorical_profile(name, spec.type, reference[name], spec.vocabulary)
        if spec.drift is not None and (spec.drift.warn is not None or spec.drift.alert is not None):
            thresholds[name] = {"warn": spec.drift.warn, "alert": spec.drift.alert}
    profile = Profile(
        contract_name=contract.name,
        contract_fingerprint=contract.schema_fingerprint(),
        n_rows=len(reference),
        bins=settings.bins,
        features=feats,
        key_features=contract.key_features,
        thresholds=thresholds,
    )
    if score_column is not None:
        sfp = _numeric_profile(score_column, numeric_values(reference[score_column]), settings.bins)
        profile.score = ScoreProfile(score_column, sfp, float(threshold), 0, 0)
    if label_column is not None:
        profile.label = LabelProfile(label_column, contract.target.positive, 0, 0)
    seg_col = segment_column if segment_column is not None else contract.segment
    if seg_col is not None and seg_col in reference.columns:
        codes, uniques = factorize(reference[seg_col])
        sizes = np.bincount(codes + 1, minlength=len(uniques) + 1)[1:]
        totals: dict[str, int] = {}
        for u, c in zip(uniques, sizes, strict=True):
            totals[canonical(u)] = totals.get(canonical(u), 0) + int(c)
        big = sorted((k for k, c in totals.items() if c >= settings.segment_min_rows), key=lambda k: (-totals[k], k))
        profile.segments = SegmentProfile(seg_col, settings.segment_min_rows, {k: SegmentEntry(0, {}) for k in big})
    wc = count_window(
        profile,
        reference,
        list(feats),
        score_column=score_column,
        label_column=label_column,
        keep_predictions=score_column is not None and label_column is not None,
    )
    for name, fc in wc.features.items():
        feats[name].counts = fc.counts
    if profile.score is not None and wc.score is not None:
        profile.score.feature.counts = wc.score.counts
        profile.score.scored = wc.scored
        profile.score.predicted_positive = wc.predicted_positive
    if profile.label is not None:
        profile.label.labelled = wc.labelled
        profile.label.positives = wc.label_positive
    if profile.segments is not None:
        for k, sc in wc.segments.items():
            profile.segments.values[k] = SegmentEntry(sc.n_rows, sc.features, sc.score)
    if wc.y_true:
        from driftline.drift.performance import performance_metrics

        y_true = np.concatenate(wc.y_true)
        if y_true.size:
            profile.performance = performance_metrics(y_true, np.concatenate(wc.y_score), threshold)
    return profile
