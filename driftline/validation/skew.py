"""Training–serving skew: the same feature, represented or computed differently on each side.

Three checks, each a pure function of the two frames and the contract:

- **vocabulary** (categorical features): serving values never seen in training (nor in the
  contract's vocabulary), each with the training value it most likely means and a confidence.
  Evidence comes from normalisation (case, whitespace, punctuation, accents), country names
  and codes resolved through ``pycountry`` (when most training values are countries), and,
  when the entity id is on both sides, the training value the same entity had (TFDV's
  ID-joined skew). Evidence for one target combines as 1 − Π(1 − cᵢ).

  Evidence alone never makes a mapping: a serving value is proposed as a rename of a training
  value only when it **replaces** it (see :func:`rename_check`). Write ``p`` for the old value's
  share of non-null training rows, ``q`` for its share of non-null serving rows, and ``s`` for
  the serving share of the old value plus every unseen value proposed for it (two spellings of
  one renamed value, "United States" and "U.S.", take its place together). The old value is
  replaced when both hold:

  1. it vanished from serving: ``q ≤ rename_vanish_ratio × p`` (10% of its training share);
  2. its replacement's share matches: ``|s − p| ≤ rename_share_rtol × p + rename_share_z × SE``
     (a relative 50% band for a population that moved between the two windows, plus 3 standard
     errors of a two-proportion difference for sampling noise, ``SE = √(p̄(1 − p̄)(1/n_t + 1/n_s))``
     with ``p̄`` the pooled share and ``n_t``, ``n_s`` the non-null rows of each side).

  A value known only from the contract's vocabulary (no training rows) has no share to match:
  condition 1 alone applies (it must not be served). This holds for every kind of evidence: a
  new plan ``basic_plus_2026`` taken up by 9% of the entities that had ``basic``, while ``basic``
  keeps most of its share, is a new category (drift, the drift engine's call), not a rename.
  Such values, served *alongside* the value their evidence points to, get no mapping and count
  as new categories for severity (``low``, informational: the promotion gate does not block on
  it); they are listed in ``details["new_categories"]`` with that value. Values whose candidate
  vanished but whose share does not match (a split or merge of categories) get no mapping either
  and count as values without a counterpart (``details["share_mismatch"]``).
- **scale** (numeric features): serving quantiles that are all the same multiple of the
  training quantiles (×100, ×1000, percent vs fraction, seconds vs milliseconds ...).
- **row level**: when entity id and timestamp join serving rows to training rows (the same
  event on both sides), the share of joined rows whose value differs, per feature.

Severity from the share of rows affected (serving rows for vocabulary, joined rows for row
level): ``high`` at ≥ ``high_share`` (1%), ``medium`` at ≥ ``medium_share`` (0.1%), else
``low``. For a vocabulary, the share that counts is the rows with a suggested mapping (a
representation mismatch), or every unseen row when the vocabulary is closed; for an open
vocabulary, unseen values with no plausible counterpart are new categories rather than skew:
they rank ``low`` unless they reach ``new_values_share`` (5%), then ``medium``; values served
alongside the training value they resemble are new categories whatever their share (``low``).
A detected unit factor is always ``high``. Values are compared as canonical text
(:func:`driftline.values.category_value`: ``4111.0`` on one side and ``4111`` on the other are the
same value), so the mapping's keys and values are strings; booleans and times are read as ingest
reads them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.values import category_text, parse_bool, parse_times

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2}
METHODS = ("normalise", "country", "entity")
KINDS = ("vocabulary", "scale", "row_level")

# Confidence of one piece of evidence for "serving value u means training value t".
CONF_NORMALISED = 0.95
CONF_NORMALISED_AMBIGUOUS = 0.6
CONF_COUNTRY = 0.9
CONF_COUNTRY_FUZZY = 0.6
ENTITY_FULL_SUPPORT = 10  # joined rows at which entity evidence counts fully

MAX_UNSEEN_VALUES = 1000  # distinct unseen values examined for a mapping (most frequent first)
MAX_FUZZY_LOOKUPS = 200
COUNTRY_SHARE = 0.8  # share of training rows that must resolve to countries
SCALE_PROBS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)

# Unit factors (serving / training) and what they usually mean.
KNOWN_FACTORS: dict[float, str] = {
    10.0: "×10",
    100.0: "×100 (percent vs fraction, or cents vs units)",
    1000.0: "×1000 (e.g. milliseconds vs seconds, grams vs kilograms)",
    1e6: "×1,000,000 (e.g. microseconds vs seconds)",
    60.0: "×60 (minutes vs hours, or seconds vs minutes)",
    3600.0: "×3600 (seconds vs hours)",
    86400.0: "×86400 (seconds vs days)",
    24.0: "×24 (hours vs days)",
    7.0: "×7 (days vs weeks)",
}

# Common country names pycountry's lookup does not resolve (keys normalised with _norm).
_COUNTRY_ALIASES = {
    "uk": "GB",
    "greatbritain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "america": "US",
    "turkey": "TR",
    "ivorycoast": "CI",
    "swaziland": "SZ",
    "capeverde": "CV",
    "holland": "NL",
    "russia": "RU",
    "deutschland": "DE",
    "brasil": "BR",
    "espana": "ES",
    "italia": "IT",
    "nederland": "NL",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "polska": "PL",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "nippon": "JP",
    "nihon": "JP",
    "burma": "MM",
    "easttimor": "TL",
    "vatican": "VA",
    "macedonia": "MK",
}

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class SkewThresholds:
    """Knobs of the skew checks, with their defaults."""

    medium_share: float = 0.001
    high_share: float = 0.01
    new_values_share: float = 0.05
    min_confidence: float = 0.5
    scale_consistency: float = 0.2  # all quantile ratios within ×(1 ± this) of their median
    scale_snap: float = 0.1  # median ratio within ×(1 ± this) of a known factor
    min_rows: int = 20  # numeric values needed on each side for the scale check
    numeric_rtol: float = 1e-6
    numeric_atol: float = 1e-9
    # The rename rule (module docstring): a serving value replaces a training value only when
    # the old value's serving share is at most this fraction of its training share ...
    rename_vanish_ratio: float = 0.1
    # ... and the replacing share is within ±(rtol × training share + z × two-proportion SE).
    rename_share_rtol: float = 0.5
    rename_share_z: float = 3.0


@dataclass
class SkewFinding:
    """One skew finding: what, where, how bad, and what to do about it."""

    kind: str  # vocabulary | scale | row_level
    feature: str
    severity: str
    rows_affected: int
    share_affected: float
    summary: str
    suggested_fix: str
    mapping: dict[str, Any] | None = None
    confidence: dict[str, float] | None = None
    evidence: dict[str, list[str]] | None = None
    unmapped: dict[str, int] | None = None
    factor: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass
class SkewReport:
    """All findings of one training-vs-serving comparison."""

    findings: list[SkewFinding]
    training_rows: int
    serving_rows: int
    features_checked: list[str]
    joined_rows: int | None = None
    join_keys: list[str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def for_feature(self, name: str, kind: str | None = None) -> list[SkewFinding]:
        return [f for f in self.findings if f.feature == name and (kind is None or f.kind == kind)]

    def counts(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in SEVERITY_ORDER}

    def to_dict(self) -> dict[str, Any]:
        return _plain(
            {
                "training_rows": self.training_rows,
                "serving_rows": self.serving_rows,
                "joined_rows": self.joined_rows,
                "join_keys": self.join_keys,
                "features_checked": self.features_checked,
                "skipped": self.skipped,
                "severity_counts": self.counts(),
                "findings": [f.to_dict() for f in self.findings],
            }
        )

    def to_markdown(self) -> str:
        lines = [
            "# Training–serving skew",
            "",
            f"Training rows: {self.training_rows:,} · serving rows: {self.serving_rows:,}"
            + (f" · joined on {' + '.join(self.join_keys or [])}: {self.joined_rows:,}" if self.joined_rows else ""),
            "",
        ]
        if not self.findings:
            lines.append(f"No skew found in {len(self.features_checked)} features.")
        else:
            c = self.counts()
            lines += [
                f"{len(self.findings)} finding(s): {c['high']} high, {c['medium']} medium, {c['low']} low.",
                "",
                "| severity | kind | feature | rows affected | share | suggested fix |",
                "|---|---|---|---:|---:|---|",
            ]
            for f in self.findings:
                fix = f.suggested_fix.replace("|", "\\|")
                lines.append(
                    f"| {f.severity} | {f.kind} | {f.feature} | {f.rows_affected:,} | {f.share_affected:.2%} | {fix} |"
                )
            for f in self.findings:
                lines += ["", f"## {f.kind}: {f.feature} ({f.severity})", "", f.summary]
                if f.mapping:
                    lines += [
                        "",
                        "Mapping (serving → training), ready to use:",
                        "",
                        "```json",
                        json.dumps(f.mapping, indent=2, ensure_ascii=False, default=str),
                        "```",
                    ]
                if f.factor is not None:
                    lines += ["", f"Factor (serving / training): {f.factor:g}"]
        if self.skipped:
            lines += ["", "Not checked: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())]
        return "\n".join(lines) + "\n"


# -- helpers -----------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _norm(text: Any) -> str:
    """Case, whitespace, punctuation and accents removed: 'Côte d'Ivoire' -> 'cotedivoire'."""
    # Casefold first: folding can add letters (Greek iota subscript 'ᾀ' -> 'ἀι'), so folding after
    # stripping accents would make _norm(x) differ from _norm(x.casefold()).
    s = unicodedata.normalize("NFKD", str(text).casefold())
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    return _NON_ALNUM.sub("", s.casefold())


def _spaced(text: Any) -> str:
    """Accents removed and punctuation dropped, words kept: 'U.S.A.' -> 'USA', 'México' -> 'Mexico'."""
    s = unicodedata.normalize("NFKD", str(text))
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = re.sub(r"[.'’]", "", s)
    return " ".join(_NON_ALNUM.sub(" ", s).split())


def _severity(share: float, t: SkewThresholds) -> str:
    if share >= t.high_share:
        return "high"
    if share >= t.medium_share:
        return "medium"
    return "low"


def _max_severity(*levels: str) -> str:
    return max(levels, key=lambda s: SEVERITY_ORDER[s])


def _combine(confidences: Iterable[float]) -> float:
    p = 1.0
    for c in confidences:
        p *= 1.0 - c
    return 1.0 - p


def _value_counts(s: pd.Series) -> dict[str, int]:
    """Non-null value counts keyed by the value's canonical text (1, 1.0 and "1" meet), most frequent first."""
    vc = category_text(s).value_counts(dropna=True, sort=True)
    return {str(v): int(n) for v, n in zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True)}


def _as_text(s: pd.Series) -> pd.Series:
    """Values as canonical text with nulls kept null (for joins and comparisons across dtypes).

    Canonical as in :func:`driftline.values.category_value`: ``4111.0`` and ``4111`` are both
    ``"4111"``. Whitespace is kept: a stray space is a difference between the two sides.
    """
    return category_text(s)


def _numeric(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy()
    if not pd.api.types.is_numeric_dtype(s.dtype):
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype="float64", na_value=np.nan)


# -- country names and codes ----------------------------------------------------------------


class _Countries:
    """Resolve text to ISO alpha-2 codes with pycountry (exact lookups cached per value)."""

    def __init__(self) -> None:
        import pycountry

        self._pc = pycountry
        self._exact: dict[str, str | None] = {}
        self._fuzzy_calls = 0

    def exact(self, text: str) -> str | None:
        if text in self._exact:
            return self._exact[text]
        code = _COUNTRY_ALIASES.get(_norm(text))
        if code is None:
            for candidate in dict.fromkeys((text.strip(), _spaced(text))):
                if not candidate or candidate.isdigit():
                    continue
                try:
                    code = self._pc.countries.lookup(candidate).alpha_2
                    break
                except LookupError:
                    continue
        self._exact[text] = code
        return code

    def fuzzy(self, text: str) -> str | None:
        """A unique fuzzy match, else None (at most MAX_FUZZY_LOOKUPS per check)."""
        if self._fuzzy_calls >= MAX_FUZZY_LOOKUPS or len(_norm(text)) < 4:
            return None
        self._fuzzy_calls += 1
        try:
            found = self._pc.countries.search_fuzzy(_spaced(text))
        except LookupError:
            return None
        codes = {c.alpha_2 for c in found}
        return codes.pop() if len(codes) == 1 else None


# -- the checks ----------------------------------------------------------------------------------

_EPS = 1e-12  # slack on the rename rule's comparisons (shares are ratios of counts)


def rename_check(
    training_rows: int,
    n_training: int,
    serving_rows: int,
    replacing_rows: int,
    n_serving: int,
    thresholds: SkewThresholds = SkewThresholds(),
) -> dict[str, Any]:
    """The rename rule for one training value: do the serving values proposed for it replace it?

    ``training_rows`` and ``serving_rows`` count the old value on each side, ``replacing_rows``
    the serving rows of the unseen values proposed for it, ``n_training`` and ``n_serving`` the
    non-null rows of each side. Returns the shares, the tolerance and the verdicts
    (``vanished``, ``share_matches``, ``replaced``); see the module docstring for the rule.
    """
    t = thresholds
    p = training_rows / n_training if n_training else 0.0
    q = serving_rows / n_serving if n_serving else 0.0
    k = serving_rows + replacing_rows
    s = k / n_serving if n_serving else 0.0
    vanished = q <= t.rename_vanish_ratio * p + _EPS
    if training_rows and n_training and n_serving:
        pooled = (training_rows + k) / (n_training + n_serving)
        se = math.sqrt(max(pooled * (1.0 - pooled), 0.0) * (1.0 / n_training + 1.0 / n_serving))
        tolerance = t.rename_share_rtol * p + t.rename_share_z * se
        share_matches = abs(s - p) <= tolerance + _EPS
    else:  # known only from the contract's vocabulary: no training share to match
        tolerance = None
        share_matches = True
    return {
        "training_share": p,
        "serving_share": q,
        "replacing_share": s,
        "tolerance": tolerance,
        "vanished": vanished,
        "share_matches": share_matches,
        "replaced": vanished and share_matches,
    }


def _entity_pairs(
    serving: pd.DataFrame, serving_codes: np.ndarray, train_last: pd.DataFrame, feature: str, unseen: set[str]
) -> dict[str, Counter]:
    """For serving rows with an unseen value: the training value their entity had, counted.

    ``serving_codes`` are entity codes shared with ``train_last`` (column ``_e``), which holds
    each entity's latest training row.
    """
    sv = _as_text(serving[feature]).reset_index(drop=True)
    mask = sv.isin(unseen).to_numpy(dtype=bool, na_value=False) & (serving_codes >= 0)
    if not mask.any():
        return {}
    sub = pd.DataFrame({"_e": serving_codes[mask], "_u": sv[mask].reset_index(drop=True)})
    tl = train_last[["_e", feature]].dropna()
    tl = pd.DataFrame({"_e": tl["_e"].to_numpy(), "_t": _as_text(tl[feature]).reset_index(drop=True)})
    joined = sub.merge(tl, on="_e", how="inner")
    if joined.empty:
        return {}
    pairs = joined.groupby(["_u", "_t"], sort=False).size()
    out: dict[str, Counter] = {}
    for (u, t), n in pairs.items():
        out.setdefault(str(u), Counter())[str(t)] += int(n)
    return out


def vocabulary_skew(
    training: pd.Series,
    serving: pd.Series,
    feature: str,
    *,
    vocabulary: Collection[str] | None = None,
    closed: bool = False,
    entity_pairs: Callable[[set[str]], dict[str, Counter]] | None = None,
    methods: Collection[str] = METHODS,
    thresholds: SkewThresholds = SkewThresholds(),
    countries: _Countries | None = None,
    serving_times: pd.Series | None = None,
) -> SkewFinding | None:
    """Serving values unknown to training, with a suggested training value for each (or None).

    ``serving_times`` (aligned with ``serving``) adds time evidence for a window that straddles a
    change: when the whole window fails the rename rule, the rule is applied again to the serving
    rows from the first appearance of the proposed values on (a *cutover*) — a clean rename
    passes there (the old value stops), a new category served alongside the old still fails.

    ``entity_pairs(unseen)`` returns, per unseen serving value, the training values that the
    same entities had (counted); it is called only when there are unseen values. A value is
    mapped only when its candidate passes :func:`rename_check` (the candidate vanished from
    serving and the values proposed for it take its share); ``details["rename_checks"]`` holds
    the check for each candidate.
    """
    train_counts = _value_counts(training)
    known = set(train_counts) | {str(v) for v in vocabulary or []}
    serving_counts = _value_counts(serving)
    unseen = {v: n for v, n in serving_counts.items() if v not in known}
    if not unseen:
        return None
    n_serving = int(serving.notna().sum())
    # Training values by normalised form, most frequent first (contract-only values last).
    ordered = list(train_counts) + [v for v in (vocabulary or []) if str(v) not in train_counts]
    by_norm: dict[str, list[str]] = {}
    for v in ordered:
        by_norm.setdefault(_norm(v), []).append(v)
    by_country: dict[str, str] = {}
    country_feature = False
    if "country" in methods:
        countries = countries or _Countries()
        top = ordered[:200]
        weights = [train_counts.get(v, 1) for v in top]
        resolved = [countries.exact(v) for v in top]
        hit = sum(w for w, c in zip(weights, resolved, strict=True) if c is not None)
        country_feature = bool(top) and hit >= COUNTRY_SHARE * sum(weights)
        if country_feature:
            for v, c in zip(top, resolved, strict=True):
                if c is not None and c not in by_country:
                    by_country[c] = v
    candidates: dict[str, tuple[str, float, list[str], dict[str, float]]] = {}
    pairs_by_value = entity_pairs(set(unseen)) if entity_pairs is not None and "entity" in methods else {}
    for u in list(unseen)[:MAX_UNSEEN_VALUES]:
        votes: dict[str, list[tuple[str, float]]] = {}
        if "normalise" in methods:
            key = _norm(u)
            targets = by_norm.get(key, []) if key else []
            if targets:
                conf = CONF_NORMALISED if len(targets) == 1 else CONF_NORMALISED_AMBIGUOUS
                votes.setdefault(targets[0], []).append(("normalised", conf))
        if country_feature and countries is not None:
            code, conf, how = countries.exact(u), CONF_COUNTRY, "country_code"
            if code is None:
                code, conf, how = countries.fuzzy(u), CONF_COUNTRY_FUZZY, "country_fuzzy"
            if code is not None and code in by_country:
                votes.setdefault(by_country[code], []).append((how, conf))
        if u in pairs_by_value:
            pairs = pairs_by_value[u]
            n = sum(pairs.values())
            t, k = pairs.most_common(1)[0]
            conf = (k / n) * min(1.0, n / ENTITY_FULL_SUPPORT)
            votes.setdefault(t, []).append((f"entity_join({k}/{n})", conf))
        if not votes:
            continue
        scored = {t: _combine(c for _, c in ev) for t, ev in votes.items()}
        best = max(scored, key=lambda t: (scored[t], train_counts.get(t, 0)))
        if scored[best] < thresholds.min_confidence:
            continue
        others = {t: round(s, 4) for t, s in scored.items() if t != best}
        candidates[u] = (best, round(scored[best], 4), [how for how, _ in votes[best]], others)
    # The rename rule: the values proposed for one training value replace it together, or not at all.
    n_training = sum(train_counts.values())
    replacing: dict[str, int] = {}
    for u, (best, *_) in candidates.items():
        replacing[best] = replacing.get(best, 0) + unseen[u]
    checks = {
        best: rename_check(
            train_counts.get(str(best), 0),
            n_training,
            serving_counts.get(str(best), 0),
            k,
            n_serving,
            thresholds,
        )
        for best, k in replacing.items()
    }
    if serving_times is not None and len(serving_times) == len(serving):
        text = _as_text(serving).reset_index(drop=True)
        times = pd.Series(serving_times).reset_index(drop=True)
        for best, check in list(checks.items()):
            if check["replaced"]:
                continue
            proposed = [u for u, (b, *_) in candidates.items() if b == best]
            first = times[text.isin(proposed).to_numpy(dtype=bool)].min()
            if pd.isna(first):
                continue
            after = text[(times >= first).to_numpy(dtype=bool)]
            counts = after.value_counts()
            later = rename_check(
                train_counts.get(str(best), 0),
                n_training,
                int(counts.get(str(best), 0)),
                int(sum(counts.get(u, 0) for u in proposed)),
                int(after.notna().sum()),
                thresholds,
            )
            if later["replaced"]:
                checks[best] = {**later, "cutover": str(first), "whole_window": check}
    mapping: dict[str, str] = {}
    confidence: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    alternatives: dict[str, dict[str, float]] = {}
    new_categories: dict[str, str] = {}  # served alongside the value the evidence points to
    share_mismatch: dict[str, str] = {}  # that value vanished, but its share went elsewhere too
    for u, (best, conf, how, others) in candidates.items():
        check = checks[best]
        if not check["vanished"]:
            new_categories[u] = best
            continue
        if not check["share_matches"]:
            share_mismatch[u] = best
            continue
        mapping[u] = best
        confidence[u] = conf
        evidence[u] = how
        if others:
            alternatives[u] = others
    rows = sum(unseen.values())
    mapped_rows = sum(unseen[u] for u in mapping)
    new_rows = sum(unseen[u] for u in new_categories)
    unmapped = {u: n for u, n in unseen.items() if u not in mapping}
    unexplained = {u: n for u, n in unmapped.items() if u not in new_categories}
    unexplained_rows = rows - mapped_rows - new_rows
    share = rows / n_serving if n_serving else 0.0
    mapped_share = mapped_rows / n_serving if n_serving else 0.0
    unexplained_share = unexplained_rows / n_serving if n_serving else 0.0
    levels = [_severity(mapped_share, thresholds) if mapped_rows else "low"]
    if closed:
        levels.append(_severity(share, thresholds))
    elif unexplained_share >= thresholds.new_values_share:
        levels.append("medium")
    severity = _max_severity(*levels)
    fixes = []
    if mapping:
        shown = dict(list(mapping.items())[:5])
        more = f" (+{len(mapping) - 5} more)" if len(mapping) > 5 else ""
        fixes.append(f"map serving values to the training vocabulary before encoding: {shown}{more}")
    if new_categories and not closed:
        examples = ", ".join(f"{u!r} next to {t!r}" for u, t in list(new_categories.items())[:3])
        fixes.append(
            f"{len(new_categories)} new value(s) served alongside the training value they resemble "
            f"(e.g. {examples}): new categories, drift rather than skew; do not map them, retrain"
        )
    shown_unmapped = unmapped if closed else unexplained
    if shown_unmapped:
        examples = ", ".join(repr(u) for u in list(shown_unmapped)[:3])
        what = "violate the closed vocabulary" if closed else "have no training counterpart"
        fixes.append(f"{len(shown_unmapped)} value(s) {what} (e.g. {examples}): fix upstream or extend the vocabulary")
    summary = (
        f"{rows:,} of {n_serving:,} serving rows ({share:.2%}) carry {len(unseen)} value(s) of {feature} never seen "
        f"in training; a training counterpart is suggested for {len(mapping)} value(s) covering {mapped_rows:,} rows."
    )
    if new_categories:
        summary += (
            f" {len(new_categories)} value(s) covering {new_rows:,} rows are served alongside the training value "
            "they resemble, which is still served: new categories, not renames."
        )
    return SkewFinding(
        kind="vocabulary",
        feature=feature,
        severity=severity,
        rows_affected=rows,
        share_affected=share,
        summary=summary,
        suggested_fix="; ".join(fixes),
        mapping=mapping,
        confidence=confidence,
        evidence=evidence,
        unmapped=dict(list(unmapped.items())[:50]),
        details={
            "unseen_values": len(unseen),
            "mapped_rows": mapped_rows,
            "mapped_share_of_affected": mapped_rows / rows if rows else 0.0,
            "closed_vocabulary": closed,
            "country_codes": country_feature,
            "alternatives": alternatives,
            "new_categories": new_categories,
            "share_mismatch": share_mismatch,
            "rename_checks": checks,
            "rows_by_value": dict(list(unseen.items())[:50]),
        },
    )


def _snap(ratio: float, tol: float) -> tuple[float, str] | None:
    for k, label in KNOWN_FACTORS.items():
        for factor, text in ((k, label), (1.0 / k, f"÷{k:g} (the inverse of {label})")):
            if abs(math.log(ratio / factor)) <= math.log1p(tol):
                return factor, text
    return None


def scale_ratio(
    training: np.ndarray, serving: np.ndarray, t: SkewThresholds = SkewThresholds()
) -> dict[str, Any] | None:
    """The consistent serving/training ratio of quantiles and mean, or None when there is none.

    Uses the quantiles at SCALE_PROBS and the mean where the training value is non-zero and
    both sides share its sign; needs at least three such statistics whose ratios all lie
    within ×(1 ± scale_consistency) of their (geometric) median.
    """
    a = training[np.isfinite(training)]
    b = serving[np.isfinite(serving)]
    if a.size < t.min_rows or b.size < t.min_rows:
        return None
    qa = np.quantile(a, SCALE_PROBS)
    qb = np.quantile(b, SCALE_PROBS)
    stats_a = np.append(qa, a.mean())
    stats_b = np.append(qb, b.mean())
    scale = max(float(np.max(np.abs(stats_a))), 1e-300)
    ok = (np.abs(stats_a) > 1e-9 * scale) & (np.sign(stats_a) == np.sign(stats_b)) & (stats_b != 0)
    if ok.sum() < 3:
        return None
    logs = np.log(stats_b[ok] / stats_a[ok])
    centre = float(np.median(logs))
    if float(np.max(np.abs(logs - centre))) > math.log1p(t.scale_consistency):
        return None
    return {
        "ratio": math.exp(centre),
        "statistics_used": int(ok.sum()),
        "training_quantiles": dict(zip([f"q{int(p * 100):02d}" for p in SCALE_PROBS], qa.tolist(), strict=True)),
        "serving_quantiles": dict(zip([f"q{int(p * 100):02d}" for p in SCALE_PROBS], qb.tolist(), strict=True)),
    }


def scale_skew(
    training: pd.Series, serving: pd.Series, feature: str, thresholds: SkewThresholds = SkewThresholds()
) -> SkewFinding | None:
    """A unit change of a numeric feature: serving = factor × training, for a known factor."""
    a, b = _numeric(training), _numeric(serving)
    found = scale_ratio(a, b, thresholds)
    if found is None:
        return None
    snapped = _snap(found["ratio"], thresholds.scale_snap)
    if snapped is None:
        return None
    factor, meaning = snapped
    rows = int(np.isfinite(b).sum())
    if factor > 1:
        divide = f"divide serving {feature} by {factor:g}"
    else:
        divide = f"multiply serving {feature} by {1 / factor:g}"
    return SkewFinding(
        kind="scale",
        feature=feature,
        severity="high",
        rows_affected=rows,
        share_affected=rows / len(b) if len(b) else 0.0,
        summary=(
            f"serving {feature} is consistently {found['ratio']:.4g} × training across "
            f"{found['statistics_used']} quantiles/mean: a unit change, {meaning}."
        ),
        suggested_fix=f"{divide} (or fix the unit upstream) before scoring",
        factor=factor,
        details={"measured_ratio": found["ratio"], **{k: v for k, v in found.items() if k != "ratio"}},
    )


def _boolean(s: pd.Series) -> np.ndarray:
    """Booleans as 1.0/0.0/NaN, read as ingest reads them (True/False, 1/0, yes/no, ... any case)."""
    parsed, _ = parse_bool(s)
    return parsed.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _differs(a: pd.Series, b: pd.Series, kind: str, t: SkewThresholds) -> np.ndarray:
    if kind == "boolean":
        x, y = _boolean(a), _boolean(b)
        return ~((x == y) | (np.isnan(x) & np.isnan(y)))
    if kind == "numeric":
        x, y = _numeric(a), _numeric(b)
        both_nan = np.isnan(x) & np.isnan(y)
        close = np.isclose(x, y, rtol=t.numeric_rtol, atol=t.numeric_atol)
        return ~(close | both_nan)
    x, y = _as_text(a).reset_index(drop=True), _as_text(b).reset_index(drop=True)
    xn, yn = x.isna().to_numpy(), y.isna().to_numpy()
    eq = x.eq(y).to_numpy(dtype=bool, na_value=False) & ~xn & ~yn
    return ~(eq | (xn & yn))


def row_level_skew(
    joined: pd.DataFrame, feature: str, kind: str, thresholds: SkewThresholds = SkewThresholds()
) -> SkewFinding | None:
    """Share of joined rows whose serving value differs from the training value of the same event.

    ``joined`` has ``<feature>__serving`` and ``<feature>__training`` columns; ``kind`` is the
    contract type (numeric values compare with a tolerance, booleans as 1/0).
    """
    s, tr = joined[f"{feature}__serving"], joined[f"{feature}__training"]
    numeric = kind == "numeric"
    diff = _differs(s, tr, kind, thresholds)
    k, n = int(diff.sum()), len(joined)
    if k == 0:
        return None
    share = k / n
    pairs = pd.DataFrame({"serving": _as_text(s[diff]).to_numpy(), "training": _as_text(tr[diff]).to_numpy()})
    top = pairs.value_counts(dropna=False).head(5)
    examples = [{"serving": sv, "training": tv, "rows": int(c)} for (sv, tv), c in top.items()]
    mapping = None
    factor = None
    fix = f"serving computes {feature} differently from training for the same events: align the feature pipelines"
    if numeric:
        x, y = _numeric(s[diff]), _numeric(tr[diff])
        ok = np.isfinite(x) & np.isfinite(y) & (y != 0) & (x != 0)
        if ok.sum() >= 3:
            ratios = x[ok] / y[ok]
            med = float(np.median(ratios))
            near = float(np.mean(np.abs(ratios / med - 1.0) <= 0.01)) if med > 0 else 0.0
            snapped = _snap(med, thresholds.scale_snap) if med > 0 and near >= 0.9 else None
            if snapped is not None:
                factor = snapped[0]
                fix = f"serving {feature} = {factor:g} × training on {near:.0%} of differing rows: {snapped[1]}"
    else:
        sizes = pairs.dropna().groupby(["serving", "training"], sort=False).size()
        per: dict[str, Counter] = {}
        for (u, tv), cnt in sizes.items():
            per.setdefault(str(u), Counter())[str(tv)] = int(cnt)
        mapping = {u: c.most_common(1)[0][0] for u, c in per.items() if c.most_common(1)[0][1] / sum(c.values()) >= 0.9}
        if mapping:
            shown = dict(list(mapping.items())[:5])
            fix = f"serving sends other values than training for the same events; map {shown} or align the pipelines"
    return SkewFinding(
        kind="row_level",
        feature=feature,
        severity=_severity(share, thresholds),
        rows_affected=k,
        share_affected=share,
        summary=f"{k:,} of {n:,} joined rows ({share:.2%}) have a different {feature} in serving than in training.",
        suggested_fix=fix,
        mapping=mapping or None,
        factor=factor,
        details={"joined_rows": n, "examples": examples},
    )


def _entity_codes(training: pd.Series, serving: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """One integer per entity id, shared by both sides (ids compared as text; null = -1)."""
    both = pd.concat([_as_text(training), _as_text(serving)], ignore_index=True)
    codes, _ = pd.factorize(both)
    return codes[: len(training)], codes[len(training) :]


_NAT = np.iinfo(np.int64).min


def _time_key(s: pd.Series) -> np.ndarray:
    """Times as int64 microseconds (naive = UTC; unparseable = the int64 minimum), read as ingest reads them."""
    t = parse_times(s, f"timestamp column {s.name!r}")
    return t.to_numpy(dtype="datetime64[us]").astype("int64")


def _join(
    training: pd.DataFrame,
    serving: pd.DataFrame,
    codes: tuple[np.ndarray, np.ndarray],
    times: tuple[np.ndarray, np.ndarray],
    features: list[str],
) -> pd.DataFrame:
    """Serving rows with the training row of the same (entity, time); the last row per key."""

    def side(frame: pd.DataFrame, e: np.ndarray, t: np.ndarray, suffix: str) -> pd.DataFrame:
        part = pd.DataFrame({"_e": e, "_t": t})
        for f in features:
            part[f"{f}__{suffix}"] = frame[f].reset_index(drop=True)
        part = part[(e >= 0) & (t != _NAT)]
        return part.drop_duplicates(["_e", "_t"], keep="last")

    s = side(serving, codes[1], times[1], "serving")
    t = side(training, codes[0], times[0], "training")
    return s.merge(t, on=["_e", "_t"], how="inner")


def skew_check(
    training: pd.DataFrame,
    serving: pd.DataFrame,
    contract: Contract,
    *,
    methods: Collection[str] = METHODS,
    row_level: bool = True,
    thresholds: SkewThresholds = SkewThresholds(),
) -> SkewReport:
    """Compare serving-side features with training-side features (see the module docstring).

    ``methods`` picks the vocabulary evidence used (``normalise``, ``country``, ``entity``);
    ``row_level=False`` skips the entity-and-time join.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown skew method(s) {sorted(unknown)}; valid: {', '.join(METHODS)}")
    c = contract
    # Renames the contract already records (``aliases:``) are resolved, not reported again.
    training, serving = c.apply_aliases(training), c.apply_aliases(serving)
    findings: list[SkewFinding] = []
    skipped: dict[str, str] = {}
    checked: list[str] = []
    for name in c.features:
        where = [side for side, f in (("training", training), ("serving", serving)) if name not in f.columns]
        if where:
            skipped[name] = f"missing in {' and '.join(where)}"
        else:
            checked.append(name)
    entity, ts = c.entity_id, c.timestamp
    has_entity = entity in training.columns and entity in serving.columns
    has_time = ts in training.columns and ts in serving.columns
    codes = _entity_codes(training[entity], serving[entity]) if has_entity else None
    times = (_time_key(training[ts]), _time_key(serving[ts])) if has_time else None
    train_last = None
    if codes is not None and "entity" in methods:
        part = pd.DataFrame({"_e": codes[0]})
        for f in checked:
            if c.features[f].type == "categorical":
                part[f] = training[f].reset_index(drop=True)
        if ts in training.columns:
            part["_time"] = _time_key(training[ts])
            part = part.sort_values("_time", kind="stable")
        train_last = part[part["_e"] >= 0].drop_duplicates("_e", keep="last")
    countries = _Countries() if "country" in methods else None
    for name in checked:
        f = c.features[name]
        if f.type == "categorical":
            pairs = None
            if train_last is not None:
                pairs = partial(_entity_pairs, serving, codes[1], train_last, name)
            found = vocabulary_skew(
                training[name],
                serving[name],
                name,
                vocabulary=f.vocabulary,
                closed=f.closed,
                entity_pairs=pairs,
                methods=methods,
                thresholds=thresholds,
                countries=countries,
                serving_times=_time_key(serving[ts]) if ts in serving.columns else None,
            )
        elif f.type == "numeric":
            found = scale_skew(training[name], serving[name], name, thresholds)
        else:
            found = None
        if found is not None:
            findings.append(found)
    joined_rows = None
    join_keys = None
    if row_level and codes is not None and times is not None:
        joined = _join(training, serving, codes, times, checked)
        joined_rows = len(joined)
        join_keys = [entity, ts]
        if joined_rows:
            for name in checked:
                found = row_level_skew(joined, name, c.features[name].type, thresholds)
                if found is not None:
                    findings.append(found)
    findings.sort(key=lambda x: (-SEVERITY_ORDER[x.severity], list(c.features).index(x.feature), KINDS.index(x.kind)))
    return SkewReport(
        findings=findings,
        training_rows=len(training),
        serving_rows=len(serving),
        features_checked=checked,
        joined_rows=joined_rows,
        join_keys=join_keys,
        skipped=skipped,
    )
