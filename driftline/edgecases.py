"""The edge-case suite: slices mined from the logs where the champion does worst, and a gate.

:func:`build_suite` looks at labelled logged rows scored by the champion and keeps, as slice
definitions (predicates over contract features, so they apply to any later rows):

* ``worst`` — contract segments, quantile bins of key numeric features and values of key
  categorical features whose champion Brier score is at least ``min_excess`` above the rest and
  significantly so (one-sided Welch test, Benjamini–Hochberg at ``fdr`` over every slice tried;
  at least ``min_slice_rows`` rows);
* ``rare_combo`` — pairs of categorical values that are rare together (share < the sampling's
  ``rare_share``) though each value is common enough to be seen;
* ``extreme`` — below / above the ``extreme_quantile`` quantiles of key numeric features;
* ``missing`` and ``unseen`` — a feature missing, or a category the champion never saw.

The suite is content-addressed (its hash names the file) and stored with each version.

:func:`check` applies the suite to rows neither model trained on (the test window), scores
candidate and champion on them, and runs the **perturbation test**: numeric features nudged by
±``nudge`` (relative, random sign per row and feature) and categories swapped for another value
of the contract's vocabulary; the flip rate is the share of rows whose predicted class changes.
The gates (:func:`gates`): ``edge_slices`` fails when, on a slice with enough rows, the candidate's
Brier score is worse than the champion's by more than ``margin`` and the paired difference is
significant after Holm's correction at ``alpha``; ``flip_rate`` fails when the candidate's nudge
flip rate exceeds both ``max_flip_rate`` and the champion's plus ``flip_margin`` (two flip rates
of 2,000 rows differ by about 0.007 by chance: the margin keeps noise from deciding).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftline.contract import Contract
from driftline.values import finite

Where = tuple[dict[str, Any], ...]
"""A slice's predicate: every clause must hold (``in``, ``between``, ``below``, ``above``, ``missing``, ``not_in``)."""

MAX_VALUES = 50  # categorical values tried per feature (the most common ones)
MAX_PAIR_FEATURES = 8  # categorical features whose value pairs are tried
MAX_RARE_COMBOS = 10


@dataclass(frozen=True)
class Slice:
    """One edge case: a named predicate and what the champion did on it when it was mined."""

    id: str
    kind: str  # worst | rare_combo | extreme | missing | unseen
    where: Where
    mined: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """The slices and how they were found; ``digest`` names the stored file."""

    slices: tuple[Slice, ...]
    built_from: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "built_from": self.built_from, "slices": [asdict(s) for s in self.slices]}

    @property
    def digest(self) -> str:
        raw = json.dumps([asdict(s) for s in self.slices], sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Suite:
        return cls(
            tuple(Slice(s["id"], s["kind"], tuple(s["where"]), s.get("mined", {})) for s in d.get("slices", [])),
            dict(d.get("built_from", {})),
        )


def mask(frame: pd.DataFrame, where: Where) -> np.ndarray:
    """Which rows of ``frame`` the predicate selects (a missing column selects none)."""
    m = np.ones(len(frame), dtype=bool)
    for clause in where:
        name, op = clause["feature"], clause["op"]
        if name not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        col = frame[name]
        if op == "missing":
            m &= col.isna().to_numpy()
            continue
        if op in ("in", "not_in"):
            hit = col.astype("string").isin([str(v) for v in clause["values"]]).fillna(False).to_numpy(dtype=bool)
            m &= (hit if op == "in" else ~hit) & col.notna().to_numpy()
            continue
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            if op == "below":
                m &= x < clause["value"]
            elif op == "above":
                m &= x > clause["value"]
            elif op == "between":  # low inclusive, high exclusive (the last bin includes its top)
                hi = x <= clause["high"] if clause.get("closed") else x < clause["high"]
                m &= (x >= clause["low"]) & hi
            else:
                raise ValueError(f"unknown slice operator {op!r}")
    return m


def _label(where: Where) -> str:
    parts = []
    for c in where:
        f, op = c["feature"], c["op"]
        if op == "in":
            parts.append(f"{f}={'|'.join(map(str, c['values']))}")
        elif op == "not_in":
            parts.append(f"{f} unseen")
        elif op == "missing":
            parts.append(f"{f} missing")
        elif op == "below":
            parts.append(f"{f}<{c['value']:.4g}")
        elif op == "above":
            parts.append(f"{f}>{c['value']:.4g}")
        else:
            parts.append(f"{f} in [{c['low']:.4g}, {c['high']:.4g}{']' if c.get('closed') else ')'}")
    return " & ".join(parts)


def _candidates(frame: pd.DataFrame, contract: Contract, bins: int) -> list[Where]:
    """Segments, value bins of key features (all features when none is key), categorical values."""
    names = contract.key_features or contract.feature_names
    if contract.segment and contract.segment not in names:
        names = [contract.segment, *names]
    out: list[Where] = []
    for name in names:
        if name not in frame.columns:
            continue
        kind = contract.features[name].type
        col = frame[name]
        if kind == "numeric":
            x = pd.to_numeric(col, errors="coerce").dropna().to_numpy(dtype=float)
            if len(x) == 0:
                continue
            edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
            for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
                clause = {"feature": name, "op": "between", "low": float(lo), "high": float(hi)}
                if i == len(edges) - 2:
                    clause["closed"] = True
                out.append((clause,))
        else:
            for v in col.dropna().astype("string").value_counts().head(MAX_VALUES).index:
                out.append(({"feature": name, "op": "in", "values": [str(v)]},))
    return out


def _welch_greater(a_mean: float, a_var: float, a_n: int, b_mean: float, b_var: float, b_n: int) -> float:
    """One-sided p-value that mean a > mean b (Welch's t with Satterthwaite's degrees of freedom)."""
    va, vb = a_var / a_n, b_var / max(b_n, 1)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0 if a_mean > b_mean else 1.0
    df = (va + vb) ** 2 / ((va**2 / max(a_n - 1, 1)) + (vb**2 / max(b_n - 1, 1)) or 1e-300)
    return float(stats.t.sf((a_mean - b_mean) / se, df))


def benjamini_hochberg(p: Sequence[float], q: float) -> np.ndarray:
    """Which hypotheses are rejected at false discovery rate ``q`` (step-up procedure)."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= q * np.arange(1, n + 1) / n
    k = int(np.max(np.flatnonzero(below))) + 1 if below.any() else 0
    out = np.zeros(n, dtype=bool)
    out[order[:k]] = True
    return out


def holm(p: Sequence[float], alpha: float) -> np.ndarray:
    """Which hypotheses are rejected by Holm's step-down procedure at familywise ``alpha``."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    out = np.zeros(n, dtype=bool)
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (n - rank):
            break
        out[i] = True
    return out


def build_suite(
    frame: pd.DataFrame,
    y: np.ndarray,
    scores: np.ndarray,
    contract: Contract,
    settings: Any,
    vocab: Mapping[str, Collection[str]] | None = None,
) -> Suite:
    """Mine the edge cases of labelled logged rows scored by the champion (see the module docstring)."""
    e = settings.edge_cases
    y = np.asarray(y, dtype=float)
    loss = (np.asarray(scores, dtype=float) - y) ** 2
    n = len(frame)
    total, total_sq = float(loss.sum()), float((loss**2).sum())
    glob = total / n if n else float("nan")
    tried: list[tuple[Where, dict[str, Any]]] = []
    pvals: list[float] = []
    for where in _candidates(frame, contract, e.bins):
        m = mask(frame, where)
        k = int(m.sum())
        if k < e.min_slice_rows or n - k < 2:
            continue
        s_sum, s_sq = float(loss[m].sum()), float((loss[m] ** 2).sum())
        a_mean, b_mean = s_sum / k, (total - s_sum) / (n - k)
        a_var = max(s_sq / k - a_mean**2, 0.0) * k / (k - 1)
        b_var = max((total_sq - s_sq) / (n - k) - b_mean**2, 0.0) * (n - k) / max(n - k - 1, 1)
        p = _welch_greater(a_mean, a_var, k, b_mean, b_var, n - k)
        tried.append((where, {"rows": k, "positives": int(y[m].sum()), "brier": a_mean, "brier_rest": b_mean, "p": p}))
        pvals.append(p)
    keep = benjamini_hochberg(pvals, e.fdr)
    worst = [
        (w, stat) for (w, stat), k in zip(tried, keep, strict=True) if k and stat["brier"] >= (1 + e.min_excess) * glob
    ]
    worst.sort(key=lambda ws: (-(ws[1]["brier"] - glob), _label(ws[0])))
    slices = [Slice(f"worst:{_label(w)}", "worst", w, _rounded(st)) for w, st in worst[: e.max_slices]]
    slices += _rare_combos(frame, contract, settings.sampling.rare_share)
    slices += _extremes(frame, contract, settings.sampling.extreme_quantile)
    slices += _missing_and_unseen(frame, contract, vocab)
    built = {
        "rows": n,
        "positives": int(y.sum()),
        "brier": _r(glob),
        "tried": len(tried),
        "significant": int(keep.sum()),
    }
    return Suite(tuple(slices), built)


def _r(x: float) -> float | None:
    v = finite(x)
    return None if v is None else round(v, 6)


def _rounded(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_r(v) if isinstance(v, float) else v) for k, v in d.items()}


def _rare_combos(frame: pd.DataFrame, contract: Contract, rare_share: float) -> list[Slice]:
    names = [n for n in contract.categorical + contract.boolean if n in frame.columns][:MAX_PAIR_FEATURES]
    n = len(frame)
    found: list[tuple[float, str, Where, int]] = []
    for a, b in itertools.combinations(names, 2):
        pair = frame[[a, b]].dropna().astype("string")
        counts = pair.value_counts()
        single_a, single_b = pair[a].value_counts(), pair[b].value_counts()
        for (va, vb), k in counts.items():
            # Rare together, though each value alone is not rare.
            if k >= 5 and k / n < rare_share and single_a[va] / n >= rare_share and single_b[vb] / n >= rare_share:
                where = (
                    {"feature": a, "op": "in", "values": [str(va)]},
                    {"feature": b, "op": "in", "values": [str(vb)]},
                )
                found.append((k / n, _label(where), where, int(k)))
    found.sort(key=lambda t: (t[0], t[1]))
    return [Slice(f"rare_combo:{lab}", "rare_combo", w, {"rows": k}) for _, lab, w, k in found[:MAX_RARE_COMBOS]]


def _extremes(frame: pd.DataFrame, contract: Contract, q: float) -> list[Slice]:
    out = []
    for name in contract.key_features or contract.numeric:
        if contract.features[name].type != "numeric" or name not in frame.columns:
            continue
        x = pd.to_numeric(frame[name], errors="coerce").dropna().to_numpy(dtype=float)
        if len(x) < 2:
            continue
        lo, hi = float(np.quantile(x, q)), float(np.quantile(x, 1 - q))
        for op, v in (("below", lo), ("above", hi)):
            where = ({"feature": name, "op": op, "value": v},)
            k = int(mask(frame, where).sum())
            if k:
                out.append(Slice(f"extreme:{_label(where)}", "extreme", where, {"rows": k}))
    return out


def _missing_and_unseen(
    frame: pd.DataFrame, contract: Contract, vocab: Mapping[str, Collection[str]] | None
) -> list[Slice]:
    out = []
    for name in contract.feature_names:
        if name in frame.columns and frame[name].isna().any():
            where = ({"feature": name, "op": "missing"},)
            out.append(Slice(f"missing:{name}", "missing", where, {"rows": int(frame[name].isna().sum())}))
    for name, known in (vocab or {}).items():
        if name not in frame.columns:
            continue
        where = ({"feature": name, "op": "not_in", "values": sorted(map(str, known))},)
        k = int(mask(frame, where).sum())
        if k:
            out.append(Slice(f"unseen:{name}", "unseen", where, {"rows": k}))
    return out


# -- the check against a candidate ------------------------------------------------------------
@dataclass(frozen=True)
class SliceResult:
    """Candidate and champion on one slice of the evaluation rows (Brier score, lower is better)."""

    id: str
    kind: str
    rows: int
    positives: int
    champion_brier: float | None = None
    candidate_brier: float | None = None
    difference: float | None = None  # candidate - champion
    p: float | None = None  # one-sided: the candidate is worse
    gated: bool = False
    failed: bool = False


@dataclass(frozen=True)
class EdgeCheck:
    """The suite, its results on the evaluation rows, and the perturbation flip rates."""

    suite: Suite
    results: tuple[SliceResult, ...]
    flips: dict[str, Any]
    evaluated_rows: int
    path: str | None = None
    note: str = ""

    @property
    def failed(self) -> list[SliceResult]:
        return [r for r in self.results if r.failed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite.to_dict(),
            "path": self.path,
            "evaluated_rows": self.evaluated_rows,
            "results": [asdict(r) for r in self.results],
            "flips": self.flips,
            "note": self.note,
        }


Scorer = Callable[[pd.DataFrame], np.ndarray]


def perturbations(
    frame: pd.DataFrame, contract: Contract, nudge: float, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """``nudge``: every numeric feature times 1±nudge (random sign); ``swap:<f>``: another vocabulary value."""
    out: dict[str, pd.DataFrame] = {}
    nudged = frame.copy()
    for name in contract.numeric:
        if name in nudged.columns:
            sign = rng.choice(np.array([-1.0, 1.0]), size=len(frame))
            nudged[name] = pd.to_numeric(nudged[name], errors="coerce") * (1 + nudge * sign)
    out["nudge"] = nudged
    for name in contract.categorical:
        vocab = contract.features[name].vocabulary
        if name not in frame.columns or not vocab or len(vocab) < 2:
            continue
        values = np.asarray([str(v) for v in vocab], dtype=object)
        current = frame[name].astype("string").fillna("").to_numpy(dtype=object)
        pick = values[rng.integers(0, len(values), size=len(frame))]
        same = pick == current
        while same.any():  # redraw until every row has another value
            pick[same] = values[rng.integers(0, len(values), size=int(same.sum()))]
            same = pick == current
        swapped = frame.copy()
        swapped[name] = pick
        out[f"swap:{name}"] = swapped
    return out


def flip_rates(
    scorer: Scorer, frame: pd.DataFrame, variants: Mapping[str, pd.DataFrame], threshold: float
) -> dict[str, float]:
    """Share of rows whose predicted class changes under each perturbation."""
    base = scorer(frame) >= threshold
    return {
        k: round(float(np.mean((scorer(v) >= threshold) != base)), 6) if len(frame) else 0.0
        for k, v in variants.items()
    }


def check(
    suite: Suite,
    frame: pd.DataFrame,
    y: np.ndarray,
    candidate: Scorer,
    champion: Scorer,
    contract: Contract,
    settings: Any,
    rng: np.random.Generator,
) -> EdgeCheck:
    """The suite's slices and the perturbation test on ``frame`` (rows neither model trained on)."""
    e = settings.edge_cases
    thr = settings.training.threshold
    y = np.asarray(y, dtype=float)
    cand, champ = candidate(frame), champion(frame)
    d = (cand - y) ** 2 - (champ - y) ** 2
    rows: list[dict[str, Any]] = []
    for s in suite.slices:
        m = mask(frame, s.where)
        k = int(m.sum())
        r: dict[str, Any] = {"id": s.id, "kind": s.kind, "rows": k, "positives": int(y[m].sum())}
        if k:
            r.update(
                champion_brier=_r(float(np.mean((champ[m] - y[m]) ** 2))),
                candidate_brier=_r(float(np.mean((cand[m] - y[m]) ** 2))),
                difference=_r(float(np.mean(d[m]))),
            )
        if k >= e.min_slice_rows:
            dm = d[m]
            se = float(np.std(dm, ddof=1) / math.sqrt(k))
            r["p"] = _r(float(stats.t.sf(np.mean(dm) / se, k - 1)) if se > 0 else (0.0 if np.mean(dm) > 0 else 1.0))
            r["gated"] = True
        rows.append(r)
    gated = [i for i, r in enumerate(rows) if r.get("gated")]
    reject = holm([rows[i]["p"] for i in gated], e.alpha)
    for i, rej in zip(gated, reject, strict=True):
        rows[i]["failed"] = bool(rej and rows[i]["difference"] is not None and rows[i]["difference"] > e.margin)
    take = rng.permutation(len(frame))[: e.perturb_rows]
    sample = frame.iloc[np.sort(take)].reset_index(drop=True)
    variants = perturbations(sample, contract, e.nudge, rng)
    flips = {
        "rows": len(sample),
        "nudge": e.nudge,
        "candidate": flip_rates(candidate, sample, variants, thr),
        "champion": flip_rates(champion, sample, variants, thr),
    }
    return EdgeCheck(suite, tuple(SliceResult(**r) for r in rows), flips, len(frame))


def gates(edge: EdgeCheck | None, settings: Any) -> list[Any]:
    """The ``edge_slices`` and ``flip_rate`` gates (``driftline.gates.Gate``) of an edge check."""
    from driftline.gates import Gate

    if edge is None:
        return []
    e = settings.edge_cases
    failed = edge.failed
    gated = sum(r.gated for r in edge.results)
    if failed:
        worst = max(failed, key=lambda r: r.difference or 0)
        named = "; ".join(
            f"{r.id}: candidate brier {r.candidate_brier:.4f} vs champion {r.champion_brier:.4f} "
            f"(n={r.rows}, {r.positives} positive, p={r.p:.2g})"
            for r in sorted(failed, key=lambda r: -(r.difference or 0))[:5]
        )
        slices = Gate("edge_slices", False, f"worse on {len(failed)} of {gated} edge slices: {named}", "worse_on_slice",
                      worst.difference, e.margin)  # fmt: skip
    else:
        slices = Gate(
            "edge_slices", True, f"not worse beyond {e.margin:g} brier on any of {gated} edge slices "
            f"({len(edge.results) - gated} too thin to judge)", "not_worse", None, e.margin,
        )  # fmt: skip
    cand = edge.flips.get("candidate", {}).get("nudge")
    champ = edge.flips.get("champion", {}).get("nudge")
    if cand is None:
        flip = Gate("flip_rate", True, "no rows to perturb", "no_rows")
    else:
        bound = max(e.max_flip_rate, (champ or 0.0) + e.flip_margin)
        ok = cand <= bound
        flip = Gate(
            "flip_rate", ok, f"a ±{e.nudge:g} nudge flips {cand:.1%} of predictions (champion {champ:.1%}, "
            f"bound {bound:.1%}, {edge.flips['rows']} rows)", "stable" if ok else "unstable", cand, bound,
        )  # fmt: skip
    return [slices, flip]
