"""Refreshing the test set from recent production samples ("test sets age like production data").

:func:`refresh_test_set` draws a production-mirror sample from a labelled window:

1. **One row per entity** — the entity's most recent row (ties broken by the larger request
   id), so a heavy user cannot dominate the test set. The deduplicated rows are the *pool*.
2. **Long tail first, up to a cap** — at most ``floor(tail_cap * size)`` rows are reserved for
   the tail: values of categorical features unseen in ``known_vocab`` (reason ``unseen``), rare
   categories of every categorical feature, i.e. non-missing values whose share of the pool is
   below ``rare_share`` (``rare_category``), and rows beyond the ``extreme_quantile`` /
   ``1 - extreme_quantile`` quantiles of the key numeric features — all numeric features when
   the contract marks none as key (``extreme``). Each (reason, feature, value-or-side) is a
   group; groups are visited round-robin (unseen, then rare, then extreme; by feature and value)
   taking one random row at a time, so when the cap is smaller than the tail every group is
   represented before any group gets a second row.
3. **Stratified body** — the rest is drawn without replacement within strata of label x
   segment (label only when the contract has no segment). Each stratum's quota is its pool
   share of ``size`` (largest-remainder rounding); tail rows count towards their stratum's quota
   and, where a stratum's tail rows exceed its quota, the other strata give up rows in
   proportion to what they still need.

When the pool holds ``size`` rows or fewer, the whole pool is the sample. Same data and same
``rng`` seed give the same sample and the same :func:`content_hash`.

4. **Weights** — the tail is over-represented on purpose, so each sampled row carries an
   inverse-inclusion weight: rows are grouped into cells of stratum x tail candidate (a row
   with any tail reason) and a row of a cell with ``N`` pool rows and ``n`` sampled rows weighs
   ``N / n`` (a stratum where one of its two cells got no row uses the stratum's ``N / n``).
   Weighted metrics estimate production (the pool); the tail is reported as its own slice.
   Weights sum to the pool size whenever every stratum is represented.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import LOG_COLUMNS, Contract
from driftline.errors import InputError
from driftline.labels import binary_target
from driftline.splits import utc_naive_series
from driftline.values import category_text, category_value

MISSING_SEGMENT = "__missing__"
REASONS = ("unseen", "rare_category", "extreme")


@dataclass
class TestSample:
    """A refreshed test set, its manifest (JSON-ready) and the content hash that versions it."""

    __test__ = False  # not a pytest test class

    frame: pd.DataFrame
    manifest: dict[str, Any]
    content_hash: str
    tail_request_ids: list[Any] = field(default_factory=list)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))  # aligned with ``frame`` rows


def inclusion_weights(strata: np.ndarray, candidate: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Inverse-inclusion weight of each chosen pool position (see the module docstring, step 4)."""
    n = len(strata)
    picked = np.zeros(n, dtype=bool)
    picked[chosen] = True
    out = np.zeros(n, dtype=np.float64)
    for key in np.unique(strata):
        in_h = strata == key
        cells = [in_h & candidate, in_h & ~candidate]
        if all((c & picked).any() or not c.any() for c in cells):
            for c in cells:
                k = int((c & picked).sum())
                if k:
                    out[c & picked] = c.sum() / k
        else:
            k = int((in_h & picked).sum())
            if k:
                out[in_h & picked] = in_h.sum() / k
    return out[chosen]


@dataclass(frozen=True)
class TailGroup:
    """Pool positions that share one tail reason: e.g. ("rare_category", "country", "IS")."""

    reason: str
    feature: str
    value: str
    positions: np.ndarray


# -- hashing -----------------------------------------------------------------------------
def _column_payload(s: pd.Series) -> bytes:
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        ints = s.to_numpy(dtype="datetime64[ns]").view("<i8")
        return b"M" + ints.tobytes()
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return b"b" + s.to_numpy(dtype=np.int8).tobytes()
    if pd.api.types.is_integer_dtype(s) and not s.isna().any():
        return b"i" + s.to_numpy(dtype="<i8").tobytes()
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        arr = s.to_numpy(dtype="<f8", na_value=np.nan) + 0.0  # + 0.0 turns -0.0 into 0.0
        arr[np.isnan(arr)] = np.nan  # one NaN bit pattern
        return b"f" + arr.tobytes()
    values = s.astype(object).to_numpy()
    texts = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in values]
    return b"s" + json.dumps(texts, ensure_ascii=False, separators=(",", ":")).encode()


SERVING_COLUMNS = LOG_COLUMNS[:-1]
"""The predictions log's serving columns (model, version, variant, score, label, latency)."""


def content_hash(frame: pd.DataFrame, sort_by: str | list[str] | None = None) -> str:
    """sha256 over a canonical serialisation: rows sorted by ``sort_by``, columns by name.

    Index, row order (when ``sort_by`` is given) and column order do not matter; values and
    dtype families (integer, float, bool, datetime, text) do. Datetimes are hashed as UTC. The
    serving columns of the predictions log (model version, variant, score, label, latency) are
    left out: they say how a row was served, not what it is, and a latency differs on every run,
    so hashes (and the seeds and keys made from them) depend on the data alone.
    """
    serving = [c for c in SERVING_COLUMNS if c in frame.columns]
    frame = frame.drop(columns=serving) if serving else frame
    df = frame.sort_values(sort_by, kind="stable") if sort_by is not None else frame
    h = hashlib.sha256(f"driftline-frame-v1;rows={len(df)}".encode())
    for col in sorted(df.columns, key=str):
        h.update(b"\x1ecol:" + str(col).encode() + b"\x1f")
        h.update(_column_payload(df[col]))
    return h.hexdigest()


# -- allocation ----------------------------------------------------------------------------
def allocate(total: int, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Split ``total`` integer units in proportion to ``weights`` without exceeding ``capacity``.

    Largest-remainder rounding (ties to the lower index); units a full stratum cannot take are
    re-spread over the others in proportion to their weights (evenly if their weights are 0).
    """
    weights = np.asarray(weights, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.int64)
    if total > capacity.sum():
        raise InputError(f"cannot allocate {total} rows: only {int(capacity.sum())} available")
    alloc = np.zeros(len(weights), dtype=np.int64)
    remaining = int(total)
    while remaining > 0:
        room = capacity - alloc
        open_ = room > 0
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = open_.astype(np.float64)
        ideal = remaining * w / w.sum()
        take = np.minimum(np.floor(ideal).astype(np.int64), room)
        left = remaining - int(take.sum())
        frac = ideal - np.floor(ideal)
        for i in sorted(np.flatnonzero(room - take > 0), key=lambda j: (-frac[j], j)):
            if left == 0:
                break
            take[i] += 1
            left -= 1
        alloc += take
        remaining = int(total - alloc.sum())
    return alloc


# -- tail ------------------------------------------------------------------------------------
def as_text(values: pd.Series) -> pd.Series:
    """Categorical values as canonical ``str`` (``4111.0`` -> ``"4111"``) with NaN for missing (index kept)."""
    return category_text(values)


def _key_numeric(contract: Contract) -> list[str]:
    keys = [n for n in contract.numeric if contract.features[n].key]
    return keys or contract.numeric


def tail_groups(
    pool: pd.DataFrame,
    contract: Contract,
    rare_share: float,
    extreme_quantile: float,
    known_vocab: dict[str, set[str]] | None = None,
) -> list[TailGroup]:
    """The pool's long-tail groups, ordered unseen -> rare_category -> extreme, then by feature and value."""
    n = len(pool)
    groups: list[TailGroup] = []
    if n == 0:
        return groups
    for reason in REASONS:
        found: list[TailGroup] = []
        if reason in ("unseen", "rare_category"):
            for name in contract.categorical:
                text = as_text(pool[name])
                present = text.notna().to_numpy()
                where = np.flatnonzero(present)
                by_value = pd.Series(where).groupby(text.to_numpy(dtype=object)[present]).indices
                if reason == "unseen":
                    if not known_vocab or name not in known_vocab:
                        continue
                    vocab = {category_value(v) for v in known_vocab[name]}
                    values = sorted(v for v in by_value if v not in vocab)
                else:
                    values = sorted(v for v, idx in by_value.items() if len(idx) / n < rare_share)
                for v in values:
                    found.append(TailGroup(reason, name, v, where[by_value[v]]))
        else:
            for name in _key_numeric(contract):
                x = pd.to_numeric(pool[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                if np.isnan(x).all():
                    continue
                lo, hi = np.nanquantile(x, [extreme_quantile, 1 - extreme_quantile])
                with np.errstate(invalid="ignore"):
                    for side, mask in (("low", x < lo), ("high", x > hi)):
                        if mask.any():
                            found.append(TailGroup(reason, name, side, np.flatnonzero(mask)))
        groups.extend(sorted(found, key=lambda g: (g.feature, g.value)))
    return groups


def pick_tail(groups: list[TailGroup], cap: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``cap`` distinct pool positions, one random row per group per round (see module doc)."""
    perms = [rng.permutation(g.positions) for g in groups]
    pointers = [0] * len(perms)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < cap:
        progress = False
        for gi, perm in enumerate(perms):
            while pointers[gi] < len(perm) and int(perm[pointers[gi]]) in seen:
                pointers[gi] += 1
            if pointers[gi] < len(perm):
                pos = int(perm[pointers[gi]])
                pointers[gi] += 1
                chosen.append(pos)
                seen.add(pos)
                progress = True
                if len(chosen) == cap:
                    break
        if not progress:
            break
    return np.asarray(chosen, dtype=np.int64)


# -- helpers for the manifest --------------------------------------------------------------
def dedupe_latest(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """One row per entity: the latest by event time (ties: the larger request id); index reset."""
    order = frame.assign(_t=utc_naive_series(frame[contract.timestamp], contract.timestamp))
    order = order.sort_values(["_t", contract.request_id], kind="stable")
    return order.drop_duplicates(contract.entity_id, keep="last").drop(columns="_t").reset_index(drop=True)


def _segments(frame: pd.DataFrame, contract: Contract) -> pd.Series:
    if contract.segment is None:
        return pd.Series(["all"] * len(frame), index=frame.index, dtype=object)
    return as_text(frame[contract.segment]).fillna(MISSING_SEGMENT)


def _shares(values: pd.Series, order: list[str]) -> dict[str, float]:
    counts = values.value_counts()
    n = max(len(values), 1)
    return {k: float(counts.get(k, 0)) / n for k in order}


def _tvd(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# -- the sampler ---------------------------------------------------------------------------
def refresh_test_set(
    frame: pd.DataFrame,
    contract: Contract,
    size: int,
    rng: np.random.Generator,
    tail_cap: float = 0.1,
    rare_share: float = 0.01,
    extreme_quantile: float = 0.01,
    known_vocab: dict[str, set[str]] | None = None,
) -> TestSample:
    """A production-mirror test sample of labelled rows (algorithm in the module docstring).

    ``frame`` holds labelled production rows (e.g. the test window from
    :func:`driftline.splits.apply_split`). The returned frame keeps the input columns, one row
    per entity, sorted by request id. The manifest reports sizes, strata, tail rows by reason
    (a row with several reasons counts under each), and segment shares / rare-segment coverage
    of production (the deduplicated pool), the sample, and a uniform sample of the same size
    drawn from the pool with the same ``rng`` after the stratified draw. Rare segments are
    segment values below ``rare_share`` of the pool; coverage is the share of them present
    (None when there are none). Without a segment in the contract, the share gaps and the
    coverage are None: there is nothing to compare.
    """
    rid, eid, ts, target = contract.request_id, contract.entity_id, contract.timestamp, contract.target.name
    needed = [rid, eid, ts, target, *contract.categorical, *contract.numeric]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"refresh_test_set: missing column(s) {missing}")
    if size < 1:
        raise InputError(f"test-set size must be >= 1, got {size}")
    if not 0 <= tail_cap <= 1:
        raise InputError(f"tail_cap must be within [0, 1], got {tail_cap}")
    if frame[target].isna().any():
        raise InputError(
            f"refresh_test_set needs labelled rows; {int(frame[target].isna().sum())} row(s) have no {target!r}"
        )

    pool = dedupe_latest(frame, contract)
    n = len(pool)
    k = min(size, n)
    y = binary_target(pool[target], contract) if n else np.zeros(0, dtype=np.int64)
    seg = _segments(pool, contract)
    strata = pd.Series([f"{label}|{s}" for label, s in zip(y, seg, strict=True)], dtype=object)
    groups = tail_groups(pool, contract, rare_share, extreme_quantile, known_vocab)
    cap = math.floor(tail_cap * k)
    whole_pool = k == n

    if whole_pool:
        tail = np.unique(np.concatenate([g.positions for g in groups])) if groups else np.zeros(0, np.int64)
        chosen = np.arange(n, dtype=np.int64)
    else:
        tail = pick_tail(groups, cap, rng)
        keys = sorted(strata.unique())
        strata_arr = strata.to_numpy(dtype=object)
        counts = np.array([(strata_arr == key).sum() for key in keys], dtype=np.int64)
        quota = allocate(k, counts, counts)
        in_tail = np.zeros(n, dtype=bool)
        in_tail[tail] = True
        tail_per = np.array([(in_tail & (strata_arr == key)).sum() for key in keys], dtype=np.int64)
        need = np.maximum(quota - tail_per, 0)
        budget = k - len(tail)
        if need.sum() != budget:
            need = allocate(budget, need, np.minimum(need, counts - tail_per))
        body = [
            rng.choice(np.flatnonzero(~in_tail & (strata_arr == key)), size=int(m), replace=False)
            for key, m in zip(keys, need, strict=True)
            if m > 0
        ]
        chosen = np.sort(np.concatenate([tail, *body])) if (len(tail) or body) else np.zeros(0, np.int64)
    uniform = np.sort(rng.choice(n, size=k, replace=False)) if n else np.zeros(0, np.int64)

    is_candidate = np.zeros(n, dtype=bool)
    for g in groups:
        is_candidate[g.positions] = True
    chosen_weights = (
        np.ones(len(chosen)) if whole_pool else inclusion_weights(strata.to_numpy(dtype=object), is_candidate, chosen)
    )
    ordered = pool.iloc[chosen].assign(__w=chosen_weights).sort_values(rid, kind="stable").reset_index(drop=True)
    weights = ordered.pop("__w").to_numpy(dtype=np.float64)
    sample = ordered
    digest = content_hash(sample, sort_by=rid)

    # manifest ------------------------------------------------------------------------
    reasons_of: dict[int, set[str]] = {}
    for g in groups:
        for pos in g.positions:
            reasons_of.setdefault(int(pos), set()).add(g.reason)
    tail_set = {int(p) for p in tail}
    by_reason = {r: sum(1 for p in tail_set if r in reasons_of.get(p, ())) for r in REASONS}
    groups_kept = sum(1 for g in groups if tail_set.intersection(g.positions.tolist()))

    seg_order = list(seg.value_counts().index)
    prod_shares = _shares(seg, seg_order)
    sample_shares = _shares(seg.iloc[chosen], seg_order)
    uniform_shares = _shares(seg.iloc[uniform], seg_order)
    rare_segments = [s for s in seg_order if prod_shares[s] < rare_share] if contract.segment else []

    def coverage(positions: np.ndarray) -> float | None:
        if not rare_segments:
            return None
        present = set(seg.iloc[positions])
        return sum(1 for s in rare_segments if s in present) / len(rare_segments)

    strata_rows = []
    chosen_strata = strata.iloc[chosen].value_counts()
    for key, count in sorted(strata.value_counts().items()):
        label, segment = key.split("|", 1)
        strata_rows.append(
            {
                "label": int(label),
                "segment": segment,
                "production": int(count),
                "sample": int(chosen_strata.get(key, 0)),
                "production_share": count / n,
                "sample_share": int(chosen_strata.get(key, 0)) / max(len(chosen), 1),
            }
        )
    event_times = utc_naive_series(sample[ts], ts) if len(sample) else pd.Series([], dtype="datetime64[ns]")
    manifest: dict[str, Any] = {
        "content_hash": digest,
        "size_requested": int(size),
        "size": len(sample),
        "rows_in": len(frame),
        "entities": n,
        "duplicates_dropped": len(frame) - n,
        "whole_pool": whole_pool,
        "window": {
            "start": event_times.min().isoformat() if len(sample) else None,
            "end": event_times.max().isoformat() if len(sample) else None,
        },
        "parameters": {
            "tail_cap": tail_cap,
            "rare_share": rare_share,
            "extreme_quantile": extreme_quantile,
            "known_vocab_features": sorted(known_vocab) if known_vocab else [],
        },
        "positive_rate": {
            "production": _json_float(float(y.mean())) if n else None,
            "sample": _json_float(float(y[chosen].mean())) if len(chosen) else None,
            "uniform": _json_float(float(y[uniform].mean())) if len(uniform) else None,
        },
        "strata": strata_rows,
        "tail": {
            "cap": cap,
            "candidates": len({int(p) for g in groups for p in g.positions}),
            "kept": len(tail_set),
            "by_reason": by_reason,
            "groups": len(groups),
            "groups_kept": groups_kept,
            "group_list": [
                {"reason": g.reason, "feature": g.feature, "value": g.value, "rows": len(g.positions)} for g in groups
            ],
        },
        "segment": contract.segment,
        "segment_shares": {"production": prod_shares, "sample": sample_shares, "uniform": uniform_shares},
        "segment_share_gap": {
            "sample": _tvd(prod_shares, sample_shares) if contract.segment else None,
            "uniform": _tvd(prod_shares, uniform_shares) if contract.segment else None,
        },
        "rare_segments": rare_segments,
        "rare_segment_coverage": {"sample": coverage(chosen), "uniform": coverage(uniform)},
        "weights": {
            "sum": _json_float(float(weights.sum())) if len(weights) else None,
            "min": _json_float(float(weights.min())) if len(weights) else None,
            "max": _json_float(float(weights.max())) if len(weights) else None,
            "weighted_positive_rate": (
                _json_float(float(np.average(y[chosen], weights=chosen_weights)))
                if len(chosen) and chosen_weights.sum() > 0
                else None
            ),
        },
    }
    tail_ids = sorted(pool[rid].iloc[sorted(tail_set)].tolist()) if tail_set else []
    return TestSample(frame=sample, manifest=manifest, content_hash=digest, tail_request_ids=tail_ids, weights=weights)
