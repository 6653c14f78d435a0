"""Progressive rollout: a challenger goes shadow -> canary steps -> champion, or is reverted.

- **Routing** (:func:`bucket`): an entity's bucket is a stable hash of model name and entity id
  in [0, 100); during a canary step the challenger serves the entities whose bucket is below the
  step's share, so one user keeps one model while the step lasts and the share only grows.
- **Shadow**: the gateway scores each request with the champion (the answer) and, off the request
  path, with the challenger; both scores land in the store's ``rollout_scores`` table.
- **Decisions** (:func:`decide`, pure): one per interval, on the evidence of the current phase
  since it began (:func:`gather`). Too little evidence holds, never passes. Shadow compares the two
  models on the same requests (agreement at the threshold, score PSI, worst segments, failures,
  latency, and once labels arrive the paired metric difference with a bootstrap interval). A
  canary step compares the challenger's users with the champion's over the same interval: a
  relative drop of the primary metric >= ``revert_drop`` reverts once the two bootstrap intervals
  are apart and holds until then (the step's sample grows while it holds); a drop >= ``hold_drop``
  whose interval lies below the champion's estimate holds (investigate); a smaller drop, or one
  within the noise, passes. Shadow applies the same rule to the paired difference. During a
  canary the gateway also scores the challenger's requests with the champion, off the request
  path (a mirror, ``variant=shadow`` with the champion's version), so a step is judged on the
  same rows as soon as they are labelled — different users differ in base rate, which moves
  average precision — and on the two groups only without mirror scores. Failures and latency
  revert.
  The last step promotes through the registry's compare-and-set; a revert sets the share to 0
  first, then clears the ``challenger`` alias.
- A champion moved by anyone else during a rollout (a manual rollback) aborts it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftline.contract import Contract
from driftline.errors import RefusedError
from driftline.metrics import bootstrap_interval, classification_metrics, paired_difference
from driftline.registry.rollouts import FINAL, Rollout, RolloutStore
from driftline.settings import RolloutSettings

Action = Literal["hold", "investigate", "advance", "promote", "revert", "abort"]
CHALLENGER = "challenger"
SEGMENT_MIN_ROWS = 30
PSI_NOTE = 0.25


def bucket(model: str, entity: Any) -> float:
    """The entity's stable place in [0, 100) for routing (sha256 of model and entity id)."""
    digest = hashlib.sha256(f"{model}\x00{entity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def serves_challenger(model: str, entity: Any, share: float) -> bool:
    """True when the challenger serves ``entity`` at canary ``share`` percent."""
    return share > 0 and (share >= 100 or bucket(model, entity) < share)


@dataclass(frozen=True)
class Why:
    """One structured reason of a rollout decision; ``text`` is rendered from the fields."""

    code: str
    level: Action
    text: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evidence:
    """What one phase (or canary step) has seen since it began."""

    phase: str
    requests: dict[str, int] = field(default_factory=dict)  # rows per variant
    errors: dict[str, int] = field(default_factory=dict)  # failed challenger scorings per variant
    p99_ms: dict[str, float] = field(default_factory=dict)
    labelled: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    metric: dict[str, float] = field(default_factory=dict)  # primary metric per variant (canary)
    interval: dict[str, list[float]] = field(default_factory=dict)  # its bootstrap interval
    paired: int = 0  # shadow: requests scored by both
    agreement: float | None = None
    score_psi: float | None = None
    paired_diff: list[float] | None = None  # shadow: challenger - champion (estimate, low, high)
    champion_metric: float | None = None  # shadow: the champion's metric on the labelled paired rows
    worst_segments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutDecision:
    """A decision, why, and the state it leaves."""

    action: Action
    reasons: list[Why]
    evidence: Evidence | None
    rollout: Rollout | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": [r.to_dict() for r in self.reasons],
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "rollout": None if self.rollout is None else self.rollout.to_dict(),
        }


# -- evidence ----------------------------------------------------------------------------------
def _p99(x: pd.Series) -> float:
    x = pd.to_numeric(x, errors="coerce").dropna()
    return float(np.percentile(x, 99)) if len(x) else float("nan")


def _psi(a: np.ndarray, b: np.ndarray, bins: int = 10) -> float:
    """PSI of two score samples over the first one's deciles (driftline.drift.stats.psi)."""
    from driftline.drift.stats import psi

    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    cb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1)
    return float(psi(ca.astype(float), cb.astype(float)))


def _labels(store: Any, contract: Contract, ids: list[str]) -> dict[str, int]:
    from driftline.labels import canonical_label

    pos = canonical_label(contract.target.positive)
    return {k: int(canonical_label(v) == pos) for k, v in store.labels_for(ids).items()}


def gather(
    store: Any,
    contract: Contract,
    rollout: Rollout,
    *,
    metric: str,
    threshold: float,
    rng: np.random.Generator,
    resamples: int = 500,
    until_us: int | None = None,
) -> Evidence:
    """The evidence of the rollout's current phase or step, read from the store."""
    rows = store.read_rollout_scores(rollout.model, rollout.phase_started_us, until_us)
    ev = Evidence(phase=rollout.phase)
    # the challenger's scores: its shadow scores in shadow, the answers it served in a canary
    name = "shadow" if rollout.phase == "shadow" else CHALLENGER
    served = rows[(rows["variant"] == "champion") & (rows["model_version"] == rollout.champion)]
    shadow = rows[(rows["variant"] == name) & (rows["model_version"] == rollout.challenger)]
    ok = shadow[shadow["error"].isna()]
    ev.requests = {"champion": len(served), name: len(shadow)}
    ev.errors = {name: int(shadow["error"].notna().sum())}
    ev.p99_ms = {"champion": _p99(served["latency_ms"]), name: _p99(ok["latency_ms"])}
    if rollout.phase == "shadow":
        pair = served.merge(ok, on="request_id", suffixes=("_c", "_s"))
    else:  # the champion's mirror scores of the requests the challenger answered
        mirror = rows[(rows["variant"] == "shadow") & (rows["model_version"] == rollout.champion)]
        pair = mirror[mirror["error"].isna()].merge(ok, on="request_id", suffixes=("_c", "_s"))
    ev.paired = len(pair)
    if len(pair):
        ev.agreement = float((pair["predicted_label_c"] == pair["predicted_label_s"]).mean())
        ev.score_psi = _psi(pair["score_c"].to_numpy(float), pair["score_s"].to_numpy(float))
        if rollout.phase == "shadow":
            ev.worst_segments = _worst_segments(store, contract, pair)
        y = _labels(store, contract, pair["request_id"].tolist())
        lab = pair[pair["request_id"].isin(y.keys())]
        yy = np.array([y[r] for r in lab["request_id"]], dtype=np.int64)
        ev.labelled = {"paired": len(lab)}
        ev.positives = {"paired": int(yy.sum())}
        if len(lab) and 0 < yy.sum() < len(yy):
            d = paired_difference(
                metric, yy, lab["score_s"], lab["score_c"], rng, threshold=threshold, resamples=resamples
            )
            ev.paired_diff = [d.estimate, d.low, d.high]
            ev.champion_metric = float(classification_metrics(yy, lab["score_c"], threshold)[metric])
    if rollout.phase == "shadow":
        return ev
    for variant, part in (("champion", served), (CHALLENGER, ok)):
        y = _labels(store, contract, part["request_id"].tolist())
        lab = part[part["request_id"].isin(y.keys())]
        yy = np.array([y[r] for r in lab["request_id"]], dtype=np.int64)
        ev.labelled[variant] = len(lab)
        ev.positives[variant] = int(yy.sum())
        if len(lab) and 0 < yy.sum() < len(yy):
            iv = bootstrap_interval(metric, yy, lab["score"], rng, threshold=threshold, resamples=resamples)
            ev.metric[variant] = iv.estimate
            ev.interval[variant] = [iv.low, iv.high]
    return ev


def _worst_segments(store: Any, contract: Contract, pair: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
    """Categorical values where the two models disagree most (at least SEGMENT_MIN_ROWS requests each)."""
    cats = list(contract.categorical)
    if not cats:
        return []
    feats = store.prediction_features(pair["request_id"].tolist(), cats)
    if feats.empty:
        return []
    both = pair.merge(feats, left_on="request_id", right_on=contract.request_id)
    both["disagree"] = both["predicted_label_c"] != both["predicted_label_s"]
    out: list[dict[str, Any]] = []
    for name in cats:
        g = both.groupby(name, dropna=True)["disagree"].agg(["mean", "size"])
        for value, r in g[g["size"] >= SEGMENT_MIN_ROWS].iterrows():
            out.append({"feature": name, "value": str(value), "disagreement": float(r["mean"]), "rows": int(r["size"])})
    return sorted(out, key=lambda s: -s["disagreement"])[:top]


# -- the decision ------------------------------------------------------------------------------
def decide(rollout: Rollout, ev: Evidence, s: RolloutSettings, *, metric: str) -> tuple[Action, list[Why]]:
    """What to do with ``rollout`` given ``ev`` (pure; see the module docstring for the rules)."""
    if rollout.paused:
        return "hold", [Why("paused", "hold", "the rollout is paused (driftline rollout resume)")]
    name = "shadow" if rollout.phase == "shadow" else CHALLENGER
    why: list[Why] = []
    attempts = ev.requests.get(name, 0)
    errors = ev.errors.get(name, 0)
    if attempts and errors / attempts > s.max_error_rate and errors >= 5:
        rate = errors / attempts
        why.append(
            Why(
                "challenger_errors",
                "revert",
                f"challenger failed on {errors} of {attempts} requests ({rate:.1%})",
                value=rate,
                threshold=s.max_error_rate,
            )
        )
        return "revert", why
    if rollout.phase == "shadow":
        if attempts < s.min_shadow_requests:
            return "hold", [
                Why(
                    "insufficient_shadow",
                    "hold",
                    f"{attempts} shadow-scored requests of {s.min_shadow_requests} needed",
                    value=float(attempts),
                    threshold=float(s.min_shadow_requests),
                )
            ]
        if ev.agreement is not None and ev.agreement < s.min_agreement:
            worst = ", ".join(f"{w['feature']}={w['value']} {w['disagreement']:.0%}" for w in ev.worst_segments)
            why.append(
                Why(
                    "extreme_disagreement",
                    "revert",
                    f"the models label only {ev.agreement:.1%} of the same requests alike"
                    + (f" (worst: {worst})" if worst else ""),
                    value=ev.agreement,
                    threshold=s.min_agreement,
                )
            )
            return "revert", why
    else:
        need = s.min_requests
        if attempts < need:
            return "hold", [
                Why(
                    "insufficient_traffic",
                    "hold",
                    f"{attempts} requests served by the challenger at {rollout.share:g}% of {need} needed",
                    value=float(attempts),
                    threshold=float(need),
                )
            ]
    slow = _too_slow(ev, name, s)
    if slow is not None:
        return "revert", [slow]
    quality = _quality(rollout, ev, s, metric)
    if quality is not None:
        level, reason = quality
        if level != "advance":
            return level, [reason]
        why.append(reason)
    if ev.score_psi is not None and ev.score_psi >= PSI_NOTE:
        why.append(
            Why(
                "score_shift",
                "advance",
                f"score PSI between the models {ev.score_psi:.3f}",
                value=ev.score_psi,
                threshold=PSI_NOTE,
            )
        )
    if rollout.phase == "shadow":
        why.append(Why("shadow_passed", "advance", f"shadow passed on {attempts} requests; canary at {s.steps[0]:g}%"))
        return "advance", why
    if rollout.step >= len(s.steps) - 1:
        why.append(Why("canary_complete", "promote", "the challenger served every request and held its guardrails"))
        return "promote", why
    why.append(Why("step_passed", "advance", f"{rollout.share:g}% passed; next {s.steps[rollout.step + 1]:g}%"))
    return "advance", why


def _too_slow(ev: Evidence, name: str, s: RolloutSettings) -> Why | None:
    mine, theirs = ev.p99_ms.get(name, float("nan")), ev.p99_ms.get("champion", float("nan"))
    if np.isfinite(mine) and np.isfinite(theirs) and mine > s.latency_ratio * theirs + 5.0:
        bar = s.latency_ratio * theirs + 5.0
        return Why(
            "challenger_slow", "revert", f"challenger p99 {mine:.1f} ms > {bar:.1f} ms", value=mine, threshold=bar
        )
    return None


def _paired(ev: Evidence, s: RolloutSettings, metric: str) -> tuple[Action, Why] | None:
    """The guardrail on the same requests scored by both models, or None without enough labels."""
    if ev.paired_diff is None or ev.champion_metric in (None, 0):
        return None
    if ev.labelled.get("paired", 0) < s.min_labelled or ev.positives.get("paired", 0) < s.min_positives:
        return None
    est, _low, high = ev.paired_diff
    drop = -est / float(ev.champion_metric)
    text = (
        f"{metric} on the same {ev.labelled['paired']} labelled requests: challenger - champion "
        f"{est:+.4f} (95% up to {high:+.4f})"
    )
    if drop >= s.revert_drop and high < 0:
        return "revert", Why("worse_on_same_rows", "revert", text, metric, drop, s.revert_drop)
    if drop >= s.revert_drop:
        unsure = text + "; waiting for more labels"
        return "hold", Why("metric_drop_unconfirmed", "hold", unsure, metric, drop, s.revert_drop)
    if drop >= s.hold_drop and high < 0:
        return "investigate", Why("investigate_quality", "investigate", text, metric, drop, s.hold_drop)
    return "advance", Why("quality_ok", "advance", text, metric, drop, s.hold_drop)


def _quality(rollout: Rollout, ev: Evidence, s: RolloutSettings, metric: str) -> tuple[Action, Why] | None:
    """The metric guardrail: (level, reason), or None when it has nothing to say yet and need not."""
    paired = _paired(ev, s, metric)
    if rollout.phase == "shadow":
        return paired  # shadow passes on operational checks; labels decide when they are there
    if paired is not None:
        return paired  # the champion's mirror scores of the challenger's own requests: same rows
    if rollout.share >= 100 and ev.requests.get("champion", 0) == 0 and ev.paired == 0:
        return None  # nobody left on the champion to compare with: the 50 % step was the last comparison
    lab = min(ev.labelled.get("champion", 0), ev.labelled.get(CHALLENGER, 0))
    pos = min(ev.positives.get("champion", 0), ev.positives.get(CHALLENGER, 0))
    if CHALLENGER not in ev.metric or "champion" not in ev.metric or lab < s.min_labelled or pos < s.min_positives:
        if not s.require_labels:
            return None
        return "hold", Why(
            "insufficient_labels",
            "hold",
            f"{lab} labelled rows ({pos} positive) per variant at {rollout.share:g}%; "
            f"need {s.min_labelled} ({s.min_positives})",
            metric,
            float(lab),
            float(s.min_labelled),
        )
    champ, chall = ev.metric["champion"], ev.metric[CHALLENGER]
    drop = (champ - chall) / champ if champ else 0.0
    text = f"{metric}: challenger {chall:.4f} vs champion {champ:.4f} over the same interval ({drop:+.1%} drop)"
    apart = ev.interval[CHALLENGER][1] < ev.interval["champion"][0]  # the challenger's best < the champion's worst
    if drop >= s.revert_drop and apart:
        return "revert", Why(
            "metric_drop", "revert", text + "; the intervals do not overlap", metric, drop, s.revert_drop
        )
    if drop >= s.revert_drop:
        unsure = text + "; the intervals overlap: waiting for more rows"
        return "hold", Why("metric_drop_unconfirmed", "hold", unsure, metric, drop, s.revert_drop)
    if drop >= s.hold_drop and ev.interval[CHALLENGER][1] < champ:  # below the champion beyond its own noise
        return "investigate", Why("metric_drop_investigate", "investigate", text, metric, drop, s.hold_drop)
    return "advance", Why("quality_ok", "advance", text, metric, drop, s.hold_drop)


# -- applying decisions -----------------------------------------------------------------------------
class RolloutRunner:
    """Start, step, pause, resume and abort the rollout of one model (registry + store + rollout rows)."""

    def __init__(self, registry: Any, store: Any | None, contract: Contract | None, settings: Any) -> None:
        """``store`` and ``contract`` are needed by :meth:`step` only (it reads the evidence)."""
        self.registry = registry
        self.store = store
        self.contract = contract
        self.settings = settings
        self.rollouts = RolloutStore(registry.store)
        self.model = registry.model_name

    def status(self) -> Rollout | None:
        return self.rollouts.get(self.model)

    def start(self, version: str, *, actor: str, reason: str = "rollout started") -> Rollout:
        """Point ``challenger`` at ``version`` (the promotion rule applies) and begin in shadow."""
        current = self.rollouts.get(self.model)
        if current is not None and current.active:
            raise RefusedError(
                f"rollout {current.rollout_id} of version {current.challenger} is {current.phase}; abort it first",
                code="rollout_active",
            )
        champion = self.registry.alias_version("champion")
        if champion is None:
            raise RefusedError(f"model '{self.model}' has no champion to roll out against", code="no_champion")
        if str(version) == champion:
            raise RefusedError(f"version {version} is already the champion", code="refused")
        self.registry.set_alias(CHALLENGER, str(version), reason=reason, actor=actor, kind="challenger")
        return self.rollouts.create(self.model, str(version), champion)

    def _finish(self, r: Rollout, phase: str, action: Action, why: list[Why], actor: str) -> Rollout:
        """Share to 0 (traffic first), then clear the challenger alias with the reasons."""
        after = self.rollouts.update(r, phase=phase, share=0.0, last_action=action, reasons=[w.to_dict() for w in why])
        if after is None:
            raise RefusedError("the rollout changed while this decision was taken; nothing applied", code="moved")
        text = "; ".join(w.text for w in why)[:400] or action
        if self.registry.alias_version(CHALLENGER) == r.challenger:
            self.registry.clear_alias(
                CHALLENGER, reason=f"rollout {action}: {text}", actor=actor, expect_from=r.challenger
            )
        return after

    def step(self, *, actor: str = "rollout", rng: np.random.Generator | None = None) -> RolloutDecision:
        """Take one decision for the active rollout and apply it (nothing to do: action hold, no rollout)."""
        r = self.rollouts.get(self.model)
        if r is not None and r.phase in FINAL and self.registry.alias_version(CHALLENGER) == r.challenger:
            # the share went to 0 but clearing the alias failed (a retry lands here): finish it
            text = "; ".join(str(x.get("text", "")) for x in r.reasons)[:400] or r.last_action
            self.registry.clear_alias(
                CHALLENGER, reason=f"rollout {r.last_action}: {text}", actor=actor, expect_from=r.challenger
            )
        if r is None or not r.active:
            return RolloutDecision("hold", [Why("no_rollout", "hold", "no active rollout")], None, r)
        champion = self.registry.alias_version("champion")
        if champion != r.champion:
            if champion == r.challenger:  # promoted, and the process stopped before recording it
                why = [Why("promoted", "promote", f"champion is already version {r.challenger}")]
                after = self._finish(r, "promoted", "promote", why, actor)
                self.rollouts.record(r, "promote", [w.to_dict() for w in why], {})
                return RolloutDecision("promote", why, None, after)
            why = [Why("champion_moved", "abort", f"champion moved to {champion or 'unset'} outside the rollout")]
            return self._apply_final(r, "aborted", "abort", why, None, actor)
        if self.registry.alias_version(CHALLENGER) != r.challenger:
            why = [Why("challenger_moved", "abort", f"challenger alias no longer points at version {r.challenger}")]
            return self._apply_final(r, "aborted", "abort", why, None, actor)
        if self.store is None or self.contract is None:
            raise RefusedError("a rollout decision needs the store and the contract", code="refused")
        g = self.settings.gates
        ev = gather(
            self.store,
            self.contract,
            r,
            metric=g.primary_metric,
            threshold=float(self.settings.training.threshold),
            rng=rng if rng is not None else np.random.default_rng(r.rollout_id * 1000 + r.step + 1),
            resamples=min(g.bootstrap_resamples, 1000),
        )
        action, why = decide(r, ev, self.settings.rollout, metric=g.primary_metric)
        reasons = [w.to_dict() for w in why]
        if action == "revert":
            return self._apply_final(r, "reverted", "revert", why, ev, actor)
        if action == "promote":
            self.registry.promote(
                r.challenger,
                reason=f"rollout {r.rollout_id} complete: " + "; ".join(w.text for w in why)[:300],
                actor=actor,
                expect_from=r.champion,
            )
            after = self._finish(r, "promoted", "promote", why, actor)
            self.rollouts.record(r, "promote", reasons, ev.to_dict())
            return RolloutDecision("promote", why, ev, after)
        if action == "advance":
            steps = self.settings.rollout.steps
            nxt = r.step + 1
            after = self.rollouts.update(
                r, phase="canary", step=nxt, share=float(steps[nxt]), last_action=action, reasons=reasons
            )
        else:
            after = self.rollouts.update(r, last_action=action, reasons=reasons)
        if after is None:
            raise RefusedError("the rollout changed while this decision was taken; nothing applied", code="moved")
        self.rollouts.record(r, action, reasons, ev.to_dict())
        return RolloutDecision(action, why, ev, after)

    def _apply_final(
        self, r: Rollout, phase: str, action: Action, why: list[Why], ev: Evidence | None, actor: str
    ) -> RolloutDecision:
        after = self._finish(r, phase, action, why, actor)
        self.rollouts.record(r, action, [w.to_dict() for w in why], {} if ev is None else ev.to_dict())
        return RolloutDecision(action, why, ev, after)

    def pause(self, paused: bool = True) -> Rollout:
        """Pause (hold every decision, keep the current share) or resume."""
        r = self.rollouts.get(self.model)
        if r is None or not r.active:
            raise RefusedError("no active rollout", code="no_rollout")
        after = self.rollouts.update(r, paused=paused, last_action="pause" if paused else "resume")
        if after is None:
            raise RefusedError("the rollout changed meanwhile; try again", code="moved")
        return after

    def abort(self, *, actor: str, reason: str = "aborted by hand") -> Rollout:
        """Stop the active rollout: share 0, challenger alias cleared."""
        r = self.rollouts.get(self.model)
        if r is None or not r.active:
            raise RefusedError("no active rollout", code="no_rollout")
        why = [Why("aborted", "abort", reason)]
        return self._apply_final(r, "aborted", "abort", why, None, actor).rollout  # type: ignore[return-value]
