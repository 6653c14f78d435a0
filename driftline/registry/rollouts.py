"""Rollout state in the registry's store: one row per model (the current rollout) and its decisions.

The gateway reads the row to route (phase and canary share) like it reads an alias; the rollout
flow writes it. Every write is compare-and-set on ``rev``, so two deciders (two flow runs, a CLI
``pause`` during a decision) cannot both apply a decision taken on the same state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from driftline.errors import RefusedError
from driftline.registry.history import RegistryStore, _now_us

ACTIVE = ("shadow", "canary")
"""Phases in which the gateway routes or shadows for a rollout."""
FINAL = ("promoted", "reverted", "aborted")


@dataclass(frozen=True)
class Rollout:
    """The current (or last) rollout of one model."""

    model: str
    rollout_id: int
    challenger: str
    champion: str
    phase: str  # shadow | canary | promoted | reverted | aborted
    step: int  # index into the settings' steps while in canary; -1 in shadow
    share: float  # percent of entities the challenger serves
    paused: bool
    started_us: int
    phase_started_us: int
    updated_us: int
    rev: int
    last_action: str = ""
    reasons: tuple[dict[str, Any], ...] = ()

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        def iso(us: int) -> str:
            return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")

        return {
            "model": self.model,
            "rollout_id": self.rollout_id,
            "challenger": self.challenger,
            "champion": self.champion,
            "phase": self.phase,
            "step": self.step,
            "share": self.share,
            "paused": self.paused,
            "started": iso(self.started_us),
            "phase_started": iso(self.phase_started_us),
            "updated": iso(self.updated_us),
            "last_action": self.last_action,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class RolloutRecord:
    """One decision of a rollout, as kept."""

    rollout_id: int
    decided_us: int
    phase: str
    step: int
    share: float
    action: str
    reasons: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def _tables(md: sa.MetaData) -> dict[str, sa.Table]:
    state = sa.Table(
        "rollouts",
        md,
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("challenger_version", sa.String(32), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("phase_started_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("last_action", sa.String(32), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
    )
    decisions = sa.Table(
        "rollout_decisions",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False, index=True),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("decided_us", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
    )
    return {"state": state, "decisions": decisions}


def _rollout(row: Any) -> Rollout:
    return Rollout(
        model=row.model_name,
        rollout_id=int(row.rollout_id),
        challenger=row.challenger_version,
        champion=row.champion_version,
        phase=row.phase,
        step=int(row.step),
        share=float(row.share),
        paused=bool(row.paused),
        started_us=int(row.started_us),
        phase_started_us=int(row.phase_started_us),
        updated_us=int(row.updated_us),
        rev=int(row.rev),
        last_action=row.last_action,
        reasons=tuple(json.loads(row.reasons or "[]")),
    )


class RolloutStore:
    """Rollout rows of every model, next to the alias history (same URL, same engine)."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._t: dict[str, sa.Table] | None = None

    @property
    def t(self) -> dict[str, sa.Table]:
        if self._t is None:
            tables = _tables(sa.MetaData())
            with self.store._begin() as conn:
                tables["state"].metadata.create_all(conn, checkfirst=True)
            self._t = tables
        return self._t

    def get(self, model: str) -> Rollout | None:
        """The model's current or last rollout, or None."""
        if self.store.absent():
            return None
        t = self.t["state"]
        with self.store._begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.model_name == model)).first()
        return None if row is None else _rollout(row)

    def create(self, model: str, challenger: str, champion: str, *, now_us: int | None = None) -> Rollout:
        """Start a rollout in shadow; refused while another one is active."""
        now = _now_us() if now_us is None else now_us
        t = self.t["state"]
        with self.store._begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.model_name == model)).first()
            if row is not None and row.phase in ACTIVE:
                raise RefusedError(
                    f"rollout {row.rollout_id} of version {row.challenger_version} is still {row.phase}: "
                    "abort it first (driftline rollout abort)",
                    code="rollout_active",
                )
            values = {
                "rollout_id": 1 if row is None else int(row.rollout_id) + 1,
                "challenger_version": str(challenger),
                "champion_version": str(champion),
                "phase": "shadow",
                "step": -1,
                "share": 0.0,
                "paused": False,
                "started_us": now,
                "phase_started_us": now,
                "updated_us": now,
                "rev": 1 if row is None else int(row.rev) + 1,
                "last_action": "start",
                "reasons": "[]",
            }
            if row is None:
                conn.execute(t.insert().values(model_name=model, **values))
            else:
                done = conn.execute(
                    t.update().where(t.c.model_name == model, t.c.rev == row.rev).values(**values)
                ).rowcount
                if done != 1:
                    raise RefusedError("the rollout changed while it was being started; try again", code="moved")
        got = self.get(model)
        assert got is not None
        return got

    def update(self, current: Rollout, **values: Any) -> Rollout | None:
        """Apply ``values`` if the row is still at ``current.rev``; the new state, or None when it moved."""
        t = self.t["state"]
        now = int(values.pop("now_us", _now_us()))
        cols: dict[str, Any] = {"updated_us": now, "rev": current.rev + 1}
        names = {"challenger": "challenger_version", "champion": "champion_version"}
        for k, v in values.items():
            cols[names.get(k, k)] = json.dumps(list(v)) if k == "reasons" else v
        if ("phase" in values and values["phase"] != current.phase) or (
            "step" in values and values["step"] != current.step
        ):
            cols.setdefault("phase_started_us", now)
        with self.store._begin() as conn:
            done = conn.execute(
                t.update().where(t.c.model_name == current.model, t.c.rev == current.rev).values(**cols)
            ).rowcount
        if done != 1:
            return None
        return replace(
            current,
            **{k: (tuple(v) if k == "reasons" else v) for k, v in values.items()},
            updated_us=now,
            rev=current.rev + 1,
            phase_started_us=int(cols.get("phase_started_us", current.phase_started_us)),
        )

    def record(
        self,
        rollout: Rollout,
        action: str,
        reasons: list[dict[str, Any]],
        evidence: Mapping[str, Any],
        *,
        now_us: int | None = None,
    ) -> None:
        """Keep one decision of ``rollout`` (the state it was taken on)."""
        d = self.t["decisions"]
        with self.store._begin() as conn:
            conn.execute(
                d.insert().values(
                    model_name=rollout.model,
                    rollout_id=rollout.rollout_id,
                    decided_us=_now_us() if now_us is None else now_us,
                    phase=rollout.phase,
                    step=rollout.step,
                    share=rollout.share,
                    action=action,
                    reasons=json.dumps(reasons),
                    evidence=json.dumps(evidence, default=str),
                )
            )

    def decisions(self, model: str, rollout_id: int | None = None) -> list[RolloutRecord]:
        """Decisions of the model's rollouts (one rollout with ``rollout_id``), oldest first."""
        if self.store.absent():
            return []
        d = self.t["decisions"]
        q = sa.select(d).where(d.c.model_name == model)
        if rollout_id is not None:
            q = q.where(d.c.rollout_id == rollout_id)
        with self.store._begin() as conn:
            rows = conn.execute(q.order_by(d.c.id)).all()
        return [
            RolloutRecord(
                int(r.rollout_id),
                int(r.decided_us),
                r.phase,
                int(r.step),
                float(r.share),
                r.action,
                json.loads(r.reasons),
                json.loads(r.evidence),
            )
            for r in rows
        ]
