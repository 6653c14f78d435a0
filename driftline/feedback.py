"""Production errors back into training: a capped feedback pool and a human review queue.

When outcomes arrive, the rows the deployed model got wrong at its threshold enter the
**feedback pool** with their reason (``confident_error`` when the wrong class had probability
≥ ``feedback.confident``, else ``misclassified``); a reviewed label enters it as ``reviewed``.
The next training uses pool rows under a cap (:func:`training_rows`): only rows from before the
test window (the test set stays unseen), no older than ``max_age_weeks``, whose label is still
trustworthy (the observed outcome it was collected with is still the latest, or a person
reviewed it and no outcome contradicts them), at most ``max_share`` of the window's training
rows, trimmed deterministically with a generator seeded from the split. Pool rows inside the
training window are flagged (weighted by ``training.feedback_weight``); older ones and reviewed
rows without an outcome are added.

**Hard cases** go to the **review queue** with a priority: confident errors (is the label
right?), champion/challenger disagreement seen in shadow, unlabelled rows near the threshold and
rows with values the model never saw. ``driftline review export`` writes them for a person;
:func:`import_reviews` checks what comes back (unknown ids, bad labels, conflicts with observed
outcomes or within the file are quarantined with a reason; the counts reconcile) and feeds the
pool. Both tables live in the driftline store, next to the predictions log.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftline.contract import Contract
from driftline.errors import InputError
from driftline.registry.history import _now_us
from driftline.store import to_micros

POOL_REASONS = ("reviewed", "confident_error", "misclassified")
"""Pool reasons, in the order a trim keeps them."""

QUEUE_PRIORITY = {"confident_error": 1.0, "disagreement": 0.8, "unseen_value": 0.6, "near_threshold": 0.4}
"""Base priority of each review reason; within a reason, the closer call or larger gap ranks first."""


@dataclass(frozen=True)
class Collected:
    """What one collection added to the pool and the queue (by reason) and what it looked at."""

    labelled_rows: int
    pool_added: dict[str, int] = field(default_factory=dict)
    queue_added: dict[str, int] = field(default_factory=dict)
    scored_from: dict[str, int] = field(default_factory=dict)  # logged score vs the champion's rescore

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeedbackStore:
    """The pool and the queue tables, in the same database as a :class:`driftline.store.Store`."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.contract: Contract = store.contract
        md = sa.MetaData()
        self.pool = sa.Table(
            "feedback_pool",
            md,
            sa.Column("request_id", sa.String, primary_key=True),
            sa.Column("entity_id", sa.String),
            sa.Column("event_us", sa.BigInteger, nullable=False, index=True),
            sa.Column("label", sa.String, nullable=False),
            sa.Column("label_source", sa.String, nullable=False),  # outcome | review
            sa.Column("reason", sa.String, nullable=False),
            sa.Column("score", sa.Float),
            sa.Column("threshold", sa.Float),
            sa.Column("model_version", sa.String),
            sa.Column("reviewer", sa.String),
            sa.Column("added_us", sa.BigInteger, nullable=False),
        )
        self.queue = sa.Table(
            "review_queue",
            md,
            sa.Column("request_id", sa.String, primary_key=True),
            sa.Column("entity_id", sa.String),
            sa.Column("event_us", sa.BigInteger, nullable=False),
            sa.Column("reason", sa.String, nullable=False),
            sa.Column("priority", sa.Float, nullable=False, index=True),
            sa.Column("score", sa.Float),
            sa.Column("detail", sa.String),
            sa.Column("status", sa.String, nullable=False, index=True),  # open | exported | reviewed
            sa.Column("added_us", sa.BigInteger, nullable=False),
            sa.Column("exported_us", sa.BigInteger),
            sa.Column("reviewed_us", sa.BigInteger),
            sa.Column("reviewer", sa.String),
            sa.Column("label", sa.String),
        )
        self._md = md
        self._created = False

    def create(self) -> FeedbackStore:
        """Create the two tables when missing; safe when another process creates them at the same time."""
        if not self._created:
            self.store.create()
            for attempt in range(3):
                try:
                    with self.store.engine.begin() as conn:
                        self._md.create_all(conn)
                    break
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                    # PostgreSQL: two first runs both saw no table; the loser's CREATE fails on the
                    # catalog's unique index once the winner commits. The next look finds the tables.
                    if attempt == 2:
                        raise
            self._created = True
        return self

    def _insert_new(self, conn: Any, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        """Insert rows whose request id is not there yet (another writer's rows win); returns how many."""
        if not rows:
            return 0
        name = conn.dialect.name
        if name in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            mod = sqlite if name == "sqlite" else postgresql
            stmt = mod.insert(table).on_conflict_do_nothing(index_elements=["request_id"])
            added = 0
            for i in range(0, len(rows), 2000):
                added += conn.execute(stmt, rows[i : i + 2000]).rowcount or 0
            return added
        have = self._existing(conn, table, [r["request_id"] for r in rows])
        fresh = [r for r in rows if r["request_id"] not in have]
        if fresh:
            conn.execute(table.insert(), fresh)
        return len(fresh)

    @staticmethod
    def _existing(conn: Any, table: sa.Table, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(ids), 5000):
            q = sa.select(table.c.request_id).where(table.c.request_id.in_(list(ids[i : i + 5000])))
            out.update(r[0] for r in conn.execute(q))
        return out

    # -- reading ---------------------------------------------------------------------------
    def read_pool(self) -> pd.DataFrame:
        self.create()
        with self.store.engine.connect() as c:
            rows = c.execute(sa.select(self.pool).order_by(self.pool.c.request_id)).all()
        return pd.DataFrame(rows, columns=[col.name for col in self.pool.columns])

    def read_queue(self, statuses: Collection[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        """Queue rows, highest priority first (then newest, then id: a stable order)."""
        self.create()
        q = sa.select(self.queue)
        if statuses is not None:
            q = q.where(self.queue.c.status.in_(list(statuses)))
        q = q.order_by(self.queue.c.priority.desc(), self.queue.c.event_us.desc(), self.queue.c.request_id)
        if limit is not None:
            q = q.limit(int(limit))
        with self.store.engine.connect() as c:
            rows = c.execute(q).all()
        return pd.DataFrame(rows, columns=[col.name for col in self.queue.columns])


# -- collection --------------------------------------------------------------------------------
def errors(y: np.ndarray, scores: np.ndarray, threshold: float, confident: float) -> np.ndarray:
    """Per row: ``""`` (right), ``"misclassified"`` or ``"confident_error"`` at ``threshold``."""
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=float)
    wrong = (s >= threshold).astype(np.int64) != y
    p_wrong = np.where(y == 1, 1.0 - s, s)  # the probability the model gave the wrong class
    out = np.full(len(y), "", dtype=object)
    out[wrong] = "misclassified"
    out[wrong & (p_wrong >= confident)] = "confident_error"
    return out


def unseen_values(frame: pd.DataFrame, vocab: Mapping[str, Collection[str]] | None) -> pd.Series:
    """Per row, the first ``feature=value`` whose value the model never saw ("" when none)."""
    out = pd.Series("", index=frame.index, dtype=object)
    for name, known in (vocab or {}).items():
        if name not in frame.columns:
            continue
        col = frame[name]
        text = col.astype("string")
        new = col.notna() & ~text.isin(list(known)).fillna(False).astype(bool)
        out = out.where(~(new & (out == "")), name + "=" + text.fillna(""))
    return out


def collect(
    fb: FeedbackStore,
    labelled: pd.DataFrame,
    labelled_scores: np.ndarray,
    recent: pd.DataFrame,
    recent_scores: np.ndarray,
    settings: Any,
    *,
    model_version: str | None,
    vocab: Mapping[str, Collection[str]] | None = None,
    disagreements: pd.DataFrame | None = None,
    scored_from: Mapping[str, int] | None = None,
) -> Collected:
    """Errors among ``labelled`` rows into the pool; hard cases into the review queue.

    ``labelled`` carries the joined 0/1 target; ``*_scores`` are the deployed model's scores of
    the rows (logged, or the champion's rescore). ``disagreements`` (request id, entity id, event
    time, champion and challenger scores) come from shadow. Idempotent: a row already in the pool
    or the queue is left as it is, so reruns add nothing.
    """
    c = fb.contract
    f = settings.feedback
    thr = settings.training.threshold
    now = _now_us()
    fb.create()
    y = labelled[c.target.name].to_numpy() if len(labelled) else np.zeros(0, dtype=np.int64)
    kind = errors(y, labelled_scores, thr, f.confident) if len(labelled) else np.zeros(0, dtype=object)
    wrong = np.flatnonzero(kind != "")
    ev = to_micros(labelled[c.timestamp]) if len(labelled) else np.zeros(0, dtype=np.int64)
    # The pool keeps the label as stored (text such as "churn"), so later checks compare like with like.
    observed = fb.store.labels_for([str(labelled[c.request_id].iat[i]) for i in wrong])
    pool_rows = [
        {
            "request_id": str(labelled[c.request_id].iat[i]),
            "entity_id": str(labelled[c.entity_id].iat[i]),
            "event_us": int(ev[i]),
            "label": observed.get(str(labelled[c.request_id].iat[i]), str(int(y[i]))),
            "label_source": "outcome",
            "reason": str(kind[i]),
            "score": float(labelled_scores[i]),
            "threshold": thr,
            "model_version": model_version,
            "reviewer": None,
            "added_us": now,
        }
        for i in wrong
    ]
    queue: list[dict[str, Any]] = []

    def enqueue(
        frame: pd.DataFrame, idx: Sequence[int], reason: str, prio: np.ndarray, score: Any, detail: Any
    ) -> None:
        times = to_micros(frame[c.timestamp].iloc[list(idx)]) if len(idx) else []
        for j, i in enumerate(idx):
            queue.append(
                {
                    "request_id": str(frame[c.request_id].iat[i]),
                    "entity_id": str(frame[c.entity_id].iat[i]),
                    "event_us": int(times[j]),
                    "reason": reason,
                    "priority": round(float(prio[j]), 6),
                    "score": None if score is None else float(score[i]),
                    "detail": str(detail[i]) if detail is not None else "",
                    "status": "open",
                    "added_us": now,
                }
            )

    conf = np.flatnonzero(kind == "confident_error")
    p_wrong = np.where(y == 1, 1.0 - labelled_scores, labelled_scores) if len(labelled) else np.zeros(0)
    enqueue(
        labelled,
        conf,
        "confident_error",
        QUEUE_PRIORITY["confident_error"] + 0.1 * p_wrong[conf],
        labelled_scores,
        np.array([f"observed {int(v)}" for v in y], dtype=object),
    )
    if disagreements is not None and len(disagreements):
        gap = (disagreements["challenger_score"] - disagreements["champion_score"]).abs().to_numpy()
        d = disagreements.reset_index(drop=True)
        detail = [
            f"champion {a:.3f} vs challenger {b:.3f}"
            for a, b in zip(d["champion_score"], d["challenger_score"], strict=True)
        ]
        enqueue(
            d,
            range(len(d)),
            "disagreement",
            QUEUE_PRIORITY["disagreement"] + 0.1 * gap,
            d["champion_score"].to_numpy(),
            np.array(detail, dtype=object),
        )
    if len(recent):
        r = recent.reset_index(drop=True)
        unlabelled = ~r[c.request_id].astype(str).isin(set(labelled[c.request_id].astype(str))).to_numpy()
        unseen = unseen_values(r, vocab).to_numpy()
        idx = np.flatnonzero(unlabelled & (unseen != ""))
        enqueue(r, idx, "unseen_value", np.full(len(idx), QUEUE_PRIORITY["unseen_value"]), recent_scores, unseen)
        gap = np.abs(np.asarray(recent_scores, dtype=float) - thr)
        idx = np.flatnonzero(unlabelled & (unseen == "") & (gap <= f.near_threshold))
        enqueue(
            r,
            idx,
            "near_threshold",
            QUEUE_PRIORITY["near_threshold"] + 0.1 * (1 - gap[idx] / max(f.near_threshold, 1e-12)),
            recent_scores,
            np.array([f"{v:.3f} vs threshold {thr:g}" for v in recent_scores], dtype=object),
        )
    # One entry per request (its highest-priority reason), at most max_queue_per_run of them.
    best: dict[str, dict[str, Any]] = {}
    for row in queue:
        if row["request_id"] not in best or row["priority"] > best[row["request_id"]]["priority"]:
            best[row["request_id"]] = row
    ranked = sorted(best.values(), key=lambda r: (-r["priority"], -r["event_us"], r["request_id"]))
    with fb.store.engine.begin() as conn:
        taken = fb._existing(conn, fb.queue, [r["request_id"] for r in ranked])
        ranked = [r for r in ranked if r["request_id"] not in taken][: f.max_queue_per_run]
        pooled = fb._existing(conn, fb.pool, [r["request_id"] for r in pool_rows])
        pool_rows = [r for r in pool_rows if r["request_id"] not in pooled]
        fb._insert_new(conn, fb.pool, pool_rows)
        fb._insert_new(conn, fb.queue, ranked)
    return Collected(len(labelled), _by_reason(pool_rows), _by_reason(ranked), dict(scored_from or {}))


def _ages(weeks: np.ndarray) -> dict[str, float]:
    """Min, median and max age in weeks (empty when there are no rows)."""
    if not len(weeks):
        return {}
    return {
        "min": round(float(weeks.min()), 2),
        "median": round(float(np.median(weeks)), 2),
        "max": round(float(weeks.max()), 2),
    }


def _by_reason(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["reason"]] = out.get(r["reason"], 0) + 1
    return dict(sorted(out.items()))


# -- training --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedbackSet:
    """The training frame with feedback rows flagged or added, and how the pool was used."""

    frame: pd.DataFrame
    summary: dict[str, Any]


def training_rows(
    fb: FeedbackStore,
    base: pd.DataFrame,
    split: Any,
    settings: Any,
    rng: np.random.Generator,
) -> FeedbackSet:
    """``base`` (the window's training rows, 0/1 target) with pool rows flagged or appended, capped.

    See the module docstring for which rows are eligible; ``rng`` (seeded from the split) breaks
    ties inside each reason when the pool holds more than the cap.
    """
    from driftline.training import FEEDBACK_COLUMN  # the training frame's flag

    c = fb.contract
    f = settings.feedback
    frame = base.copy()
    frame[FEEDBACK_COLUMN] = 0
    pool = fb.read_pool()
    summary: dict[str, Any] = {"pool_rows": len(pool), "cap": int(np.floor(f.max_share * len(base))), "used": 0}
    if not f.enabled or pool.empty or summary["cap"] == 0:
        summary.update(eligible=0, in_window=0, added=0, trimmed=0, share=0.0, by_reason={}, by_source={})
        return FeedbackSet(frame, summary)
    start_us = int(to_micros(pd.Timestamp(split.test_start))[0])
    oldest_us = int(to_micros(pd.Timestamp(split.test_start) - pd.Timedelta(weeks=f.max_age_weeks))[0])
    pool = pool[(pool["event_us"] < start_us) & (pool["event_us"] >= oldest_us)]
    latest = fb.store.labels_for(pool["request_id"].tolist())
    observed = pool["request_id"].map(latest)
    from driftline.labels import canonical_label

    same = [
        canonical_label(o) == canonical_label(lab) if isinstance(o, str) else src == "review"
        for o, lab, src in zip(observed, pool["label"], pool["label_source"], strict=True)
    ]
    stale = int(len(pool) - sum(same))
    pool = pool[np.asarray(same, dtype=bool)].reset_index(drop=True)
    # Rows outside the window are added only where the window is thin (a categorical value rarer
    # than the sampling's rare_share, or absent): there the model lacks data, while in the bulk,
    # errors alone are a label-biased sample that would shift the model (a reviewed row is kept).
    rid = c.request_id
    inside = pool["request_id"].isin(set(frame[rid].astype(str))).to_numpy()
    cols = [c.entity_id, c.timestamp, *c.features]
    outside = fb.store.prediction_features(pool.loc[~inside, "request_id"].tolist(), cols)
    thin_ids = set(outside.loc[thin_rows(outside, base, c, settings.sampling.rare_share), rid].astype(str))
    keep = inside | pool["request_id"].isin(thin_ids).to_numpy() | (pool["label_source"] == "review").to_numpy()
    not_thin = int((~keep).sum())
    pool = pool[keep]
    # Deterministic trim: reviewed rows first, then confident errors, then the rest; a seeded
    # permutation inside each reason (the pool is read in id order, so the draw is reproducible).
    pool = pool.iloc[rng.permutation(len(pool))]
    pool = pool.assign(_rank=pool["reason"].map({r: i for i, r in enumerate(POOL_REASONS)}).fillna(len(POOL_REASONS)))
    pool = pool.sort_values("_rank", kind="stable")
    eligible = len(pool)
    used = pool.head(summary["cap"])
    in_window = frame[rid].astype(str).isin(set(used["request_id"]))
    frame.loc[in_window.to_numpy(), FEEDBACK_COLUMN] = 1
    added = outside[outside[rid].astype(str).isin(set(used["request_id"]))].reset_index(drop=True)
    if len(added):
        labels = used.set_index("request_id")["label"]
        pos = canonical_label(c.target.positive)
        added[c.target.name] = [int(canonical_label(labels[r]) == pos) for r in added[rid].astype(str)]
        if not pd.api.types.is_datetime64_any_dtype(added[c.timestamp]):
            from driftline.store import from_micros

            added[c.timestamp] = from_micros(added[c.timestamp]).to_numpy()
        added[FEEDBACK_COLUMN] = 1
        frame = pd.concat([frame, added[[col for col in frame.columns if col in added.columns]]], ignore_index=True)
    age_weeks = (start_us - used["event_us"].to_numpy()) / (7 * 86400 * 1e6) if len(used) else np.zeros(0)
    n_used = int(in_window.sum()) + len(added)
    summary.update(
        eligible=eligible,
        stale=stale,
        not_thin=not_thin,
        used=n_used,
        in_window=int(in_window.sum()),
        added=len(added),
        trimmed=max(eligible - len(used), 0),
        share=round(n_used / len(frame), 6) if len(frame) else 0.0,
        by_reason={str(k): int(v) for k, v in used["reason"].value_counts().sort_index().items()},
        by_source={str(k): int(v) for k, v in used["label_source"].value_counts().sort_index().items()},
        age_weeks=_ages(age_weeks),
    )
    return FeedbackSet(frame, summary)


def thin_rows(rows: pd.DataFrame, base: pd.DataFrame, contract: Contract, rare_share: float) -> np.ndarray:
    """Which ``rows`` carry a categorical or boolean value that is rare (< ``rare_share``) or absent in ``base``."""
    out = np.zeros(len(rows), dtype=bool)
    if not len(rows):
        return out
    for name in contract.categorical + contract.boolean:
        if name not in rows.columns or name not in base.columns:
            continue
        share = base[name].astype("string").value_counts(normalize=True)
        common = set(share[share >= rare_share].index)
        v = rows[name].astype("string")
        out |= (v.notna() & ~v.isin(common).fillna(False).astype(bool)).to_numpy()
    return out


# -- review ---------------------------------------------------------------------------------
def export_reviews(fb: FeedbackStore, limit: int | None = None) -> pd.DataFrame:
    """The open (and earlier exported, unreviewed) hard cases as a table to label; marks them exported."""
    c = fb.contract
    q = fb.read_queue(("open", "exported"), limit)
    if q.empty:
        return pd.DataFrame(columns=[c.request_id, "priority", "reason", "detail", "label", "reviewer"])
    feats = fb.store.prediction_features(q["request_id"].tolist(), [c.entity_id, c.timestamp, *c.features])
    observed = fb.store.labels_for(q["request_id"].tolist())
    from driftline.store import from_micros

    if c.timestamp in feats.columns and not pd.api.types.is_datetime64_any_dtype(feats[c.timestamp]):
        feats[c.timestamp] = from_micros(feats[c.timestamp]).to_numpy()
    out = q[["request_id", "priority", "reason", "detail", "score"]].rename(columns={"request_id": c.request_id})
    out = out.merge(feats, on=c.request_id, how="left")
    out["observed_label"] = out[c.request_id].map(observed)
    out["label"] = ""
    out["reviewer"] = ""
    now = _now_us()
    with fb.store.engine.begin() as conn:
        ids = q["request_id"].tolist()
        for i in range(0, len(ids), 5000):
            conn.execute(
                fb.queue.update()
                .where(fb.queue.c.request_id.in_(ids[i : i + 5000]))
                .values(status="exported", exported_us=now)
            )
    return out


@dataclass(frozen=True)
class ImportResult:
    """A reviewed file's rows: accepted, unchanged, blank (not yet labelled) and quarantined by reason."""

    source: str
    read: int
    accepted: int
    unchanged: int
    blank: int
    quarantined: dict[str, int]

    @property
    def reconciles(self) -> bool:
        return self.read == self.accepted + self.unchanged + self.blank + sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reconciles": self.reconciles}


def _allowed_labels(fb: FeedbackStore) -> frozenset[str] | None:
    from driftline.ingest import label_values
    from driftline.labels import canonical_label

    fixed = label_values(fb.contract)
    if fixed is not None:
        return fixed
    t = fb.store.tables["outcomes"]
    with fb.store.engine.connect() as c:
        seen = {canonical_label(r[0]) for r in c.execute(sa.select(t.c[fb.contract.target.name]).distinct())}
    seen.add(canonical_label(fb.contract.target.positive))
    return frozenset(s for s in seen if s)


def import_reviews(fb: FeedbackStore, frame: pd.DataFrame, source: str, reviewer: str | None) -> ImportResult:
    """Check reviewed labels and feed the good ones to the pool; one transaction, quarantine with reasons.

    Needs the request id and ``label`` columns (InputError otherwise, nothing written). Per row:
    a blank label is left for later; ``missing_request_id``, ``unknown_id`` (not in the review
    queue), ``bad_label`` (not one of the target's labels), ``no_reviewer``,
    ``conflicting_labels_in_file`` (the same id twice with different labels: every copy),
    ``duplicate_in_file`` (a repeat with the same label), ``conflicts_outcome`` (an observed
    outcome says otherwise) and ``conflicts_review`` (an earlier review said otherwise) are
    quarantined; the same label as an earlier review is ``unchanged``.
    """
    from driftline.ingest import _label_text
    from driftline.labels import canonical_label

    c = fb.contract
    rid = c.request_id if c.request_id in frame.columns else "request_id"
    missing = [col for col in (rid, "label") if col not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing required column(s): {', '.join(missing)} (have {list(frame.columns)[:12]})"
        )
    if reviewer is None and "reviewer" not in frame.columns:
        raise InputError(f"{source}: no reviewer: add a 'reviewer' column or pass --reviewer NAME")
    fb.create()
    n = len(frame)
    ids = frame[rid].map(lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v).strip())
    raw = frame["label"].map(lambda v: None if pd.isna(v) or str(v).strip() == "" else v)
    canon = raw.map(lambda v: None if v is None else canonical_label(v))
    who = pd.Series([reviewer] * n, index=frame.index, dtype=object)
    if "reviewer" in frame.columns:
        given = frame["reviewer"].map(lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v).strip()[:200])
        who = given.where(given.notna(), who)
    reason = pd.Series([None] * n, index=frame.index, dtype=object)
    blank = raw.isna() & ids.notna()

    def flag(mask: pd.Series, why: str) -> None:
        reason[mask & reason.isna() & ~blank] = why

    flag(ids.isna(), "missing_request_id")
    queue = fb.read_queue()
    queue_ids = set(queue["request_id"])
    flag(~ids.isin(queue_ids), "unknown_id")
    allowed = _allowed_labels(fb)
    flag(~canon.isin(list(allowed or [])) if allowed else canon.isna(), "bad_label")
    flag(who.isna(), "no_reviewer")
    ok = reason.isna() & ~blank
    labels_per_id = canon[ok].groupby(ids[ok]).nunique()
    conflicted = set(labels_per_id[labels_per_id > 1].index)
    flag(ids.isin(conflicted), "conflicting_labels_in_file")
    ok = reason.isna() & ~blank
    flag(ok & ids.duplicated(keep="first"), "duplicate_in_file")
    ok = reason.isna() & ~blank
    observed = fb.store.labels_for(ids[ok].tolist())
    obs = ids.map(lambda i: canonical_label(observed[i]) if i in observed else None)
    flag(ok & obs.notna() & (obs != canon), "conflicts_outcome")
    earlier = queue.set_index("request_id")["label"].dropna().map(canonical_label).to_dict()
    prev = ids.map(lambda i: earlier.get(i))
    flag(reason.isna() & prev.notna() & (prev != canon), "conflicts_review")
    ok = reason.isna() & ~blank
    unchanged = ok & prev.notna() & (prev == canon)
    accept = ok & ~unchanged
    now = _now_us()
    qi = queue.set_index("request_id")
    bad = reason.notna()
    with fb.store.engine.begin() as conn:
        if bad.any():
            fb.store.quarantine(
                frame[bad.to_numpy()].astype(str).reset_index(drop=True),
                [f"review:{r}" for r in reason[bad]],
                source,
                conn=conn,
                row_numbers=[int(i) + 1 for i in np.flatnonzero(bad.to_numpy())],
            )
        for i in np.flatnonzero(accept.to_numpy()):
            r_id, label, by = ids.iat[i], _label_text(raw.iat[i]), who.iat[i]
            conn.execute(
                fb.queue.update()
                .where(fb.queue.c.request_id == r_id)
                .values(status="reviewed", reviewed_us=now, reviewer=by, label=label)
            )
            row = {
                "request_id": r_id,
                "entity_id": qi.at[r_id, "entity_id"],
                "event_us": int(qi.at[r_id, "event_us"]),
                "label": label,
                "label_source": "review",
                "reason": "reviewed",
                "score": qi.at[r_id, "score"],
                "threshold": None,
                "model_version": None,
                "reviewer": by,
                "added_us": now,
            }
            # A reviewed label replaces the pool's entry for the row (the person checked it).
            conn.execute(fb.pool.delete().where(fb.pool.c.request_id == r_id))
            conn.execute(fb.pool.insert(), [row])
    counts = reason[bad].value_counts().to_dict()
    return ImportResult(
        source,
        n,
        int(accept.sum()),
        int(unchanged.sum()),
        int(blank.sum()),
        {str(k): int(v) for k, v in counts.items()},
    )


def status(fb: FeedbackStore, as_of: Any = None) -> dict[str, Any]:
    """The pool's size, reasons, label sources and age; the queue by status and reason."""
    pool = fb.read_pool()
    queue = fb.read_queue()
    now_us = int(to_micros(pd.Timestamp(as_of))[0]) if as_of is not None else _now_us()
    age = (now_us - pool["event_us"].to_numpy()) / (7 * 86400 * 1e6) if len(pool) else np.zeros(0)
    return {
        "pool": {
            "rows": len(pool),
            "by_reason": {str(k): int(v) for k, v in pool["reason"].value_counts().sort_index().items()},
            "by_source": {str(k): int(v) for k, v in pool["label_source"].value_counts().sort_index().items()},
            "age_weeks": _ages(age),
        },
        "queue": {
            "rows": len(queue),
            "by_status": {str(k): int(v) for k, v in queue["status"].value_counts().sort_index().items()},
            "open_by_reason": {
                str(k): int(v)
                for k, v in queue.loc[queue["status"] != "reviewed", "reason"].value_counts().sort_index().items()
            },
        },
    }
