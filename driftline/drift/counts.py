"""Bucket counts of a window: vectorised encoders and mergeable per-window counts.

A fitted profile fixes, per feature, an ordered list of buckets. This module maps a column of
values to bucket numbers without per-row Python:

- numeric: bins ``(-inf, e1], (e1, e2], ..., (ek, +inf]`` on the reference's inner quantile
  edges, plus a ``missing`` bucket for NaN. Counts come from one vectorised ``x > e`` per edge
  (bins by differences); per-row bucket numbers, needed for segments, add those comparisons
  up. Beyond 32 edges ``np.searchsorted`` on the edges plus a ``+inf`` sentinel is used
  (NaN sorts last, so it lands in the missing bucket in the same pass);
- categorical and boolean: ``pd.factorize`` (or the codes of a ``Categorical``) once per
  column, then a small lookup table from the distinct values to the profile's vocabulary,
  an ``unseen`` bucket and a ``missing`` bucket.

``np.bincount`` turns bucket numbers into counts. Counts are integers, so the counts of
chunks add up exactly to the counts of the whole window (:meth:`WindowCounts.merge`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftline.values import bool_value, category_value

if TYPE_CHECKING:
    from driftline.drift.profile import FeatureProfile, Profile

MAX_UNSEEN_TRACKED = 1000  # distinct unseen values counted by name per feature
MAX_COMPARE_EDGES = 32  # up to this many edges, count by comparisons instead of searchsorted


# Categories are compared as the same text everywhere (ingest, validation, training, drift).
canonical = category_value


def canonical_bool(value: Any) -> str | None:
    """'true' / 'false' for the boolean spellings driftline.values accepts, None for anything else."""
    b = bool_value(value)
    return None if b is None else ("true" if b else "false")


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing; text that is not a number counts as missing."""
    if series.dtype == np.float64:
        return series.to_numpy()
    if series.dtype == bool:
        return series.to_numpy(dtype=np.float64)
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def factorize(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Integer codes per row (-1 for missing) and the distinct values they index."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.intp, copy=False), list(series.cat.categories)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.intp, copy=False), list(uniques)


def _range_counts(fp: FeatureProfile, x: np.ndarray) -> tuple[int, int]:
    if fp.low is None or fp.high is None:
        return 0, 0
    return int(np.count_nonzero(x < fp.low)), int(np.count_nonzero(x > fp.high))


def encode_numeric(fp: FeatureProfile, series: pd.Series) -> tuple[np.ndarray, int, int]:
    """Bucket number per row, and how many values fall below / above the reference range."""
    x = numeric_values(series)
    edges = fp.edges
    assert edges is not None
    if len(edges) <= MAX_COMPARE_EDGES:
        # Adding up one comparison per edge is an order of magnitude faster than a binary
        # search per value for a handful of edges; NaN fails every comparison.
        codes = np.zeros(x.size, dtype=np.int8)
        for e in edges:
            codes += x > e
        codes[np.isnan(x)] = len(edges) + 1
    else:
        codes = np.searchsorted(fp.search_edges, x, side="left")
    below, above = _range_counts(fp, x)
    return codes, below, above


def count_numeric(fp: FeatureProfile, series: pd.Series) -> FeatureCounts:
    """Bucket counts without per-row bucket numbers: one vectorised comparison per edge.

    ``#(x > e_i)`` for each inner edge gives every bin by differences, the same bins as
    :func:`encode_numeric` (``(e_{i-1}, e_i]``); NaN fails every comparison and is counted
    apart. With few edges this beats a binary search per value several times over.
    """
    x = numeric_values(series)
    edges = fp.edges
    assert edges is not None
    if len(edges) > MAX_COMPARE_EDGES:
        codes, below, above = encode_numeric(fp, series)
        return FeatureCounts(np.bincount(codes, minlength=fp.n_buckets), below, above)
    missing = int(np.count_nonzero(np.isnan(x)))
    valid = x.size - missing
    above_edge = np.array([np.count_nonzero(x > e) for e in edges], dtype=np.int64)
    counts = np.empty(fp.n_buckets, dtype=np.int64)
    if len(edges):
        counts[0] = valid - above_edge[0]
        counts[1:-2] = above_edge[:-1] - above_edge[1:]
        counts[-2] = above_edge[-1]
    else:
        counts[0] = valid
    counts[-1] = missing
    below, above = _range_counts(fp, x)
    return FeatureCounts(counts, below, above)


def encode_categorical(fp: FeatureProfile, series: pd.Series) -> tuple[np.ndarray, Counter[str]]:
    """Bucket number per row (vocabulary, then unseen, then missing) and unseen values by name."""
    codes, uniques = factorize(series)
    index = fp.vocab_index
    unseen_bucket = fp.unseen_index
    if fp.kind == "boolean":
        names: list[str | None] = [canonical_bool(u) for u in uniques]
    else:
        names = [canonical(u) for u in uniques]
    lut = np.fromiter(
        (index.get(n, unseen_bucket) if n is not None else unseen_bucket for n in names),
        dtype=np.intp,
        count=len(names),
    )
    unseen: Counter[str] = Counter()
    new = np.flatnonzero(lut == unseen_bucket)
    if new.size:
        per_unique = np.bincount(codes + 1, minlength=len(uniques) + 1)[1:]
        for i in new[np.argsort(-per_unique[new], kind="stable")][:MAX_UNSEEN_TRACKED]:
            if per_unique[i]:
                unseen[canonical(uniques[i])] = int(per_unique[i])
    table = np.append(lut, fp.missing_index)  # code -1 (missing) picks the last entry
    return table[codes], unseen


@dataclass
class FeatureCounts:
    """Counts of one feature over its profile buckets, plus range and unseen tallies."""

    counts: np.ndarray
    below: int = 0
    above: int = 0
    unseen: Counter[str] = field(default_factory=Counter)

    def merge(self, other: FeatureCounts) -> FeatureCounts:
        """Add two windows' counts (exact: integer sums)."""
        unseen = self.unseen + other.unseen
        if len(unseen) > MAX_UNSEEN_TRACKED:
            unseen = Counter(dict(unseen.most_common(MAX_UNSEEN_TRACKED)))
        return FeatureCounts(self.counts + other.counts, self.below + other.below, self.above + other.above, unseen)


@dataclass
class SegmentCounts:
    """Counts within one value of the segment column."""

    n_rows: int
    features: dict[str, np.ndarray]
    score: np.ndarray | None = None

    def merge(self, other: SegmentCounts) -> SegmentCounts:
        score = None if self.score is None or other.score is None else self.score + other.score
        feats = {k: v + other.features[k] for k, v in self.features.items()}
        return SegmentCounts(self.n_rows + other.n_rows, feats, score)


@dataclass
class WindowCounts:
    """Everything compare needs from a window, in a form that adds up across chunks."""

    n_rows: int
    features: dict[str, FeatureCounts]
    score: FeatureCounts | None = None
    scored: int = 0
    predicted_positive: int = 0
    labelled: int = 0
    label_positive: int = 0
    segments: dict[str, SegmentCounts] = field(default_factory=dict)
    other_segment_rows: int = 0
    y_true: list[np.ndarray] = field(default_factory=list)
    y_score: list[np.ndarray] = field(default_factory=list)

    def merge(self, other: WindowCounts) -> WindowCounts:
        """The counts of both windows together; integer sums, so merging is exact."""
        if set(self.features) != set(other.features):
            raise ValueError("cannot merge counts of different feature sets")
        score = None
        if self.score is not None and other.score is not None:
            score = self.score.merge(other.score)
        segs = dict(self.segments)
        for k, v in other.segments.items():
            segs[k] = segs[k].merge(v) if k in segs else v
        return WindowCounts(
            n_rows=self.n_rows + other.n_rows,
            features={k: v.merge(other.features[k]) for k, v in self.features.items()},
            score=score,
            scored=self.scored + other.scored,
            predicted_positive=self.predicted_positive + other.predicted_positive,
            labelled=self.labelled + other.labelled,
            label_positive=self.label_positive + other.label_positive,
            segments=segs,
            other_segment_rows=self.other_segment_rows + other.other_segment_rows,
            y_true=self.y_true + other.y_true,
            y_score=self.y_score + other.y_score,
        )


def label_positive_mask(series: pd.Series, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, positive) boolean masks for a label column; missing labels are unlabelled."""
    labelled = series.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype) or series.dtype == bool:
        try:
            target = float(positive)
        except (TypeError, ValueError):
            target = None
        if target is not None:
            pos = (series.to_numpy(dtype=np.float64, na_value=np.nan) == target) & labelled
            return labelled, pos
    want = canonical(positive)
    codes, uniques = factorize(series)
    hit = np.array([canonical(u) == want for u in uniques] + [False], dtype=bool)
    return labelled, hit[codes]


def count_window(
    profile: Profile,
    frame: pd.DataFrame,
    features: list[str],
    *,
    score_column: str | None = None,
    label_column: str | None = None,
    segments: bool = True,
    keep_predictions: bool = False,
) -> WindowCounts:
    """Count one frame (a whole window or one chunk of it) on the profile's buckets."""
    n = len(frame)
    seg_codes = None
    seg_names: list[str] = []
    other_rows = 0
    sp = profile.segments if segments else None
    if sp is not None and sp.column in frame.columns and sp.values:
        seg_names = list(sp.values)
        where = {name: i for i, name in enumerate(seg_names)}
        codes, uniques = factorize(frame[sp.column])
        lut = np.array([where.get(canonical(u), -1) for u in uniques] + [-1], dtype=np.intp)
        seg_codes = lut[codes]
        other_rows = int(np.count_nonzero(seg_codes < 0))
    seg_sel = None if seg_codes is None else seg_codes >= 0
    seg_rows = None if seg_codes is None else seg_codes[seg_sel]
    seg_feats: dict[str, np.ndarray] = {}

    def joint(codes: np.ndarray, n_buckets: int) -> np.ndarray:
        assert seg_rows is not None and seg_sel is not None
        combined = seg_rows * n_buckets + codes[seg_sel]
        flat = np.bincount(combined, minlength=len(seg_names) * n_buckets)
        return flat.reshape(len(seg_names), n_buckets)

    out: dict[str, FeatureCounts] = {}
    for name in features:
        fp = profile.features[name]
        if fp.kind == "numeric" and seg_codes is None:
            out[name] = count_numeric(fp, frame[name])
            continue
        if fp.kind == "numeric":
            codes, below, above = encode_numeric(fp, frame[name])
            fc = FeatureCounts(np.bincount(codes, minlength=fp.n_buckets), below, above)
        else:
            codes, unseen = encode_categorical(fp, frame[name])
            fc = FeatureCounts(np.bincount(codes, minlength=fp.n_buckets), unseen=unseen)
        out[name] = fc
        if seg_codes is not None:
            seg_feats[name] = joint(codes, fp.n_buckets)

    wc = WindowCounts(n_rows=n, features=out, other_segment_rows=other_rows)
    seg_score = None
    if profile.score is not None and score_column is not None and score_column in frame.columns:
        sfp = profile.score.feature
        if seg_codes is None:
            wc.score = count_numeric(sfp, frame[score_column])
        else:
            codes, below, above = encode_numeric(sfp, frame[score_column])
            wc.score = FeatureCounts(np.bincount(codes, minlength=sfp.n_buckets), below, above)
        s = numeric_values(frame[score_column])
        scored = ~np.isnan(s)
        wc.scored = int(np.count_nonzero(scored))
        wc.predicted_positive = int(np.count_nonzero(s >= profile.score.threshold))
        if seg_codes is not None:
            seg_score = joint(codes, sfp.n_buckets)
        if label_column is not None and label_column in frame.columns and profile.label is not None:
            labelled, pos = label_positive_mask(frame[label_column], profile.label.positive)
            wc.labelled = int(np.count_nonzero(labelled))
            wc.label_positive = int(np.count_nonzero(pos))
            if keep_predictions:
                both = labelled & scored
                wc.y_true.append(pos[both].astype(np.int8))
                wc.y_score.append(s[both].copy())
    elif label_column is not None and label_column in frame.columns and profile.label is not None:
        labelled, pos = label_positive_mask(frame[label_column], profile.label.positive)
        wc.labelled = int(np.count_nonzero(labelled))
        wc.label_positive = int(np.count_nonzero(pos))
    if seg_codes is not None:
        sizes = np.bincount(seg_rows, minlength=len(seg_names))
        for i, name in enumerate(seg_names):
            wc.segments[name] = SegmentCounts(
                n_rows=int(sizes[i]),
                features={f: seg_feats[f][i] for f in features},
                score=None if seg_score is None else seg_score[i],
            )
    return wc
