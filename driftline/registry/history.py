"""Alias history and provenance, as tables in the production store (SQLite or PostgreSQL).

MLflow keeps no history of alias moves (its issue #2169) and anyone can edit its tags, so
driftline keeps what it must trust in its own store, through SQLAlchemy, readable from any host:

``alias_history``
    One row per alias move, numbered by the database (``seq``, autoincrement: never claimed
    twice, whatever the host or the spelling of the tracking URI). Each row names the row it
    follows for the same model and alias (``prev_seq``) under a unique constraint, so the moves of
    an alias form one chain: two writers that both read head *N* cannot both append after it —
    the database refuses the second, which re-reads and decides again. That is the
    compare-and-set every move goes through.

``model_registrations``
    One row per idempotency key, written by driftline when it registers a version: the run, the
    model's artifact hash, how it was serialised (and the types skops may load), and the verdict
    (gates and validation passed, with the reasons). Promotion and loading read this, never the
    version's mutable tags.

A row in state ``intent`` is a move (or registration) in flight, held by a process
(``holder`` = host, pid and start time) under a lease. Anyone may settle it once the holder is
gone (same host, process dead) or the lease ran out (any host).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from driftline.errors import DriftlineError, TransientError
from driftline.secrets import mask_url

MOVE_LEASE_SECONDS = 30.0
"""How long a move may stay in flight before another host may settle it (same host: at once if dead)."""
REGISTRATION_LEASE_SECONDS = 900.0
"""How long a registration may take before another host may take it over."""


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _dt(us: int | None) -> datetime:
    return datetime.fromtimestamp((us or 0) / 1_000_000, UTC)


# -- who holds a lease ------------------------------------------------------------------------
def _start_time(pid: int) -> str:
    """The process' start time in clock ticks (Linux), '' where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def holder_id() -> str:
    """``host|pid|start``: names this process uniquely, even after pid reuse."""
    pid = os.getpid()
    return f"{socket.gethostname()}|{pid}|{_start_time(pid)}"


def holder_alive(holder: str | None) -> bool | None:
    """True/False for a holder on this host; None when it runs elsewhere (only its lease tells)."""
    if not holder:
        return False
    try:
        host, pid_s, start = holder.split("|", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not start or _start_time(pid) in ("", start)


_ACTIVE: set[tuple[str, int | str]] = set()
"""Rows this process is writing right now (a move in flight, a registration being logged)."""


@contextmanager
def active(kind: str, ident: int | str) -> Iterator[None]:
    """Mark a row as being written by this process, so its own later calls do not settle it."""
    _ACTIVE.add((kind, ident))
    try:
        yield
    finally:
        _ACTIVE.discard((kind, ident))


def settleable(holder: str | None, expires_us: int | None, row: tuple[str, int | str] | None = None) -> bool:
    """May this process settle a row in flight: its holder is gone, or its lease ran out.

    A row held by this very process is settleable unless it is being written right now (an
    exception unwound the write that started it, as a crash would).
    """
    if holder == holder_id():
        return row is None or row not in _ACTIVE
    alive = holder_alive(holder)
    if alive is False:
        return True
    return (expires_us or 0) < _now_us()


# -- records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AliasMove:
    """One alias move as recorded in driftline's alias history.

    ``state`` is ``done`` for a completed move, ``intent`` while a move is in flight (or after a
    crash, until settled) and ``aborted`` for a move that never happened. ``kind`` is how it came
    about: ``promote``, ``rollback``, ``set``, or ``external`` (a move found made outside
    driftline, recorded when seen). ``changed`` is False when the alias already pointed at the
    target (nothing was moved or recorded).
    """

    seq: int
    when: datetime
    actor: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    kind: str = "set"
    state: str = "done"
    forced: bool = False
    note: str = ""
    changed: bool = True
    prev_seq: int = 0
    holder: str = field(default="", compare=False)  # bookkeeping of the move in flight, not its meaning
    expires_us: int = field(default=0, compare=False)

    @property
    def result(self) -> str | None:
        """The version the alias holds after this record: its target if done, else where it was."""
        return self.to_version if self.state == "done" else self.from_version

    def record(self) -> dict[str, Any]:
        """The JSON-ready record (what ``models history --json`` shows)."""
        return {
            "seq": self.seq,
            "when": self.when.astimezone(UTC).isoformat(timespec="milliseconds"),
            "actor": self.actor,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "kind": self.kind,
            "state": self.state,
            "forced": self.forced,
            "note": self.note,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.record()
        d["from_version"] = d.pop("from")
        d["to_version"] = d.pop("to")
        d["changed"] = self.changed
        return d

    def one_line(self, model: str) -> str:
        """The last move in one line (the registered model's mirror tag in MLflow's UI)."""
        forced = " (forced)" if self.forced else ""
        return (
            f"#{self.seq} {self.when:%Y-%m-%d %H:%M}Z {self.alias}: {self.from_version or 'unset'} -> "
            f"{self.to_version or 'unset'} by {self.actor}{forced}: {self.reason}"
        )[:500]


@dataclass(frozen=True)
class Registration:
    """What driftline recorded when it registered (or began registering) a version."""

    model_name: str
    key: str
    state: str  # intent (claimed) | logged (run and model written) | registered (version known)
    version: str | None
    run_id: str | None
    model_uri: str | None
    artifact_sha256: str | None
    serialization: str | None
    trusted_types: tuple[str, ...]
    gates_passed: bool
    validation_passed: bool
    refusals: tuple[str, ...]
    code_version: str
    holder: str
    expires_us: int
    registered_at: datetime

    @property
    def passed(self) -> bool:
        return self.gates_passed and self.validation_passed


class ConflictError(Exception):
    """Another writer appended first (unique constraint): re-read and decide again."""


def previous_holder(moves: Sequence[AliasMove], alias: str, current: str) -> str | None:
    """The version ``alias`` should roll back to from ``current``, per the recorded history.

    Completed moves of ``alias`` are replayed as an undo stack: a rollback to the version just
    below the top pops; any other move pushes its target. The answer is the entry below
    ``current`` on top, so repeated rollbacks walk further back (6 -> 5 -> 3 -> 1) instead of
    flipping between two versions. A move whose ``from`` is not the top (the alias was moved
    outside driftline in between) first pushes that holder; when ``current`` itself is not on top,
    the last recorded holder is the answer.
    """
    stack: list[str] = []
    for m in moves:
        if m.alias != alias or m.state != "done" or m.to_version is None:
            continue
        if m.from_version is not None and (not stack or stack[-1] != m.from_version):
            stack.append(m.from_version)
        if m.kind == "rollback" and len(stack) >= 2 and stack[-2] == m.to_version:
            stack.pop()
        else:
            stack.append(m.to_version)
    if stack and stack[-1] != current:
        return stack[-1]
    return stack[-2] if len(stack) >= 2 else None


@dataclass(frozen=True)
class OutsideMove:
    """An alias whose MLflow target differs from what driftline's history says it should be.

    ``recorded`` is the version the last settled record leaves the alias at (None = unset),
    ``actual`` what MLflow says now; ``last`` is that record (None before the alias' first move).
    """

    alias: str
    recorded: str | None
    actual: str | None
    last: AliasMove | None = None

    @property
    def text(self) -> str:
        """One line for ``models list``: what differs and what to do."""
        was = f"version {self.recorded}" if self.recorded else "unset"
        now = f"version {self.actual}" if self.actual else "unset"
        since = f" (last recorded move #{self.last.seq} by {self.last.actor})" if self.last is not None else ""
        return (
            f"{self.alias} is at {now} in MLflow but driftline's history has it {was}{since}: moved outside "
            "driftline (MLflow UI or another client), past the gates and the history; driftline records it "
            "as 'external' at its next move of this alias — use driftline models promote/rollback instead"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "recorded": self.recorded,
            "actual": self.actual,
            "last_seq": None if self.last is None else self.last.seq,
            "text": self.text,
        }


def outside_moves(
    moves: Sequence[AliasMove], aliases_now: Mapping[str, str], managed: Sequence[str] = ()
) -> list[OutsideMove]:
    """Aliases whose MLflow target (``aliases_now``) differs from the recorded history's, by alias name.

    Looks at the aliases in ``managed`` and every alias the history records; an alias whose
    last record is still an ``intent`` (a move in flight, or one a repair will settle) is left
    out — it is not an outside move. An alias driftline never recorded counts as unset, so a
    ``champion`` set by hand before driftline's first move is reported too.
    """
    heads: dict[str, AliasMove] = {}
    for m in moves:
        heads[m.alias] = m  # ordered by seq: the last one per alias is its head
    out = []
    for alias in sorted(set(managed) | set(heads)):
        head = heads.get(alias)
        if head is not None and head.state == "intent":
            continue
        recorded = head.result if head is not None else None
        actual = aliases_now.get(alias)
        actual = None if actual is None else str(actual)
        if actual != recorded:
            out.append(OutsideMove(alias, recorded, actual, head))
    return out


# -- the tables ---------------------------------------------------------------------------------
def _tables(md: sa.MetaData) -> dict[str, sa.Table]:
    history = sa.Table(
        "alias_history",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("prev_seq", sa.Integer, nullable=False),
        sa.Column("from_version", sa.String(32)),
        sa.Column("to_version", sa.String(32)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("model_name", "alias", "prev_seq", name="uq_alias_history_chain"),
        sqlite_autoincrement=True,  # never reuse a number, even after the last row is deleted
    )
    registrations = sa.Table(
        "model_registrations",
        md,
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("model_uri", sa.Text),
        sa.Column("artifact_sha256", sa.String(64)),
        sa.Column("serialization", sa.String(32)),
        sa.Column("trusted_types", sa.Text, nullable=False),
        sa.Column("gates_passed", sa.Boolean, nullable=False),
        sa.Column("validation_passed", sa.Boolean, nullable=False),
        sa.Column("refusals", sa.Text, nullable=False),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("registered_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("model_name", "version", name="uq_model_registrations_version"),
    )
    decisions = sa.Table(
        "weekly_decisions",
        md,
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("week", sa.String(32), primary_key=True),  # the test window's start, ISO
        sa.Column("champion_version", sa.String(32)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("codes", sa.Text, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )
    return {"history": history, "registrations": registrations, "decisions": decisions}


class RegistryStore:
    """The alias history and registration records of every model, at one SQLAlchemy URL.

    Nothing happens in ``__init__``; tables are created on first use. Every write is one short
    transaction; none is held open across a call to MLflow.
    """

    def __init__(self, url: str) -> None:
        self.url = str(url)
        self._engine: Any = None
        self._t: dict[str, sa.Table] | None = None

    def __repr__(self) -> str:
        return f"RegistryStore({mask_url(self.url)!r})"

    # -- engine ---------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        if self._engine is None:
            if self.url.startswith("sqlite:///"):
                from pathlib import Path

                path = self.url.removeprefix("sqlite:///").split("?", 1)[0]
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                # SQLite: no pooled connections left open between calls. The production store is
                # also read through ADBC's own SQLite in this process, and a second SQLite library
                # closing the file drops the POSIX locks of connections this one keeps open.
                pool = {"poolclass": sa.pool.NullPool} if self.url.startswith("sqlite") else {}
                engine = sa.create_engine(self.url, **pool)
            except Exception as e:  # bad URL or missing driver
                raise DriftlineError(f"store URL {mask_url(self.url)}: {e}") from None
            if engine.dialect.name == "sqlite":

                @sa.event.listens_for(engine, "connect")
                def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.close()

            self._engine = engine
        return self._engine

    def absent(self) -> bool:
        """True for a SQLite store whose file does not exist yet (reads answer empty, create nothing)."""
        if not self.url.startswith("sqlite:///"):
            return False
        from pathlib import Path

        path = self.url.removeprefix("sqlite:///").split("?", 1)[0]
        return bool(path) and path != ":memory:" and not Path(path).exists()

    @property
    def t(self) -> dict[str, sa.Table]:
        if self._t is None:
            tables = _tables(sa.MetaData())
            with self._begin() as conn:
                tables["history"].metadata.create_all(conn, checkfirst=True)
            self._t = tables
        return self._t

    @contextmanager
    def _begin(self) -> Iterator[Any]:
        """One transaction; connection failures become one line naming the (masked) store."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError:
            raise
        except sa.exc.OperationalError as e:
            reason = " ".join(str(e.orig).split())
            kind = TransientError if "locked" in reason or "connect" in reason.lower() else DriftlineError
            raise kind(f"store {mask_url(self.url)}: {reason}"[:400]) from None
        except sa.exc.DBAPIError as e:
            reason = " ".join(str(e.orig).split())
            raise DriftlineError(f"store {mask_url(self.url)}: {reason}"[:400]) from None

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- alias history ----------------------------------------------------------------------------
    @staticmethod
    def _move(row: Any) -> AliasMove:
        return AliasMove(
            seq=int(row.seq),
            when=_dt(row.created_us),
            actor=row.actor,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            reason=row.reason,
            kind=row.kind,
            state=row.state,
            forced=bool(row.forced),
            note=row.note,
            prev_seq=int(row.prev_seq),
            holder=row.holder,
            expires_us=int(row.expires_us),
        )

    def moves(self, model: str, alias: str | None = None) -> list[AliasMove]:
        """Every recorded move of ``model`` (of one alias), in order."""
        if self.absent():
            return []
        h = self.t["history"]
        q = sa.select(h).where(h.c.model_name == model)
        if alias is not None:
            q = q.where(h.c.alias == alias)
        with self._begin() as conn:
            return [self._move(r) for r in conn.execute(q.order_by(h.c.seq))]

    def head(self, model: str, alias: str) -> AliasMove | None:
        """The last record of the alias' chain (None before its first move)."""
        h = self.t["history"]
        q = sa.select(h).where(h.c.model_name == model, h.c.alias == alias).order_by(h.c.seq.desc()).limit(1)
        with self._begin() as conn:
            row = conn.execute(q).first()
        return None if row is None else self._move(row)

    def in_flight(self, model: str) -> list[AliasMove]:
        """Moves of ``model`` still in state ``intent``."""
        if self.absent():
            return []
        h = self.t["history"]
        q = sa.select(h).where(h.c.model_name == model, h.c.state == "intent").order_by(h.c.seq)
        with self._begin() as conn:
            return [self._move(r) for r in conn.execute(q)]

    def append(self, model: str, move: AliasMove, lease: float = MOVE_LEASE_SECONDS) -> AliasMove:
        """Append ``move`` after ``move.prev_seq``; raise ConflictError when another writer got there first."""
        now = _now_us()
        values = {
            "model_name": model,
            "alias": move.alias,
            "prev_seq": move.prev_seq,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "kind": move.kind,
            "state": move.state,
            "forced": move.forced,
            "actor": move.actor[:255],
            "reason": move.reason,
            "note": move.note,
            "created_us": now,
            "updated_us": now,
            "holder": move.holder,
            "expires_us": now + int(lease * 1_000_000) if move.state == "intent" else 0,
        }
        h = self.t["history"]
        try:
            with self._begin() as conn:
                # Where the head is an intent, nothing may follow it until it is settled.
                head = conn.execute(
                    sa.select(h.c.seq, h.c.state)
                    .where(h.c.model_name == model, h.c.alias == move.alias)
                    .order_by(h.c.seq.desc())
                    .limit(1)
                ).first()
                if (head.seq if head else 0) != move.prev_seq:
                    raise ConflictError(move.prev_seq)
                seq = conn.execute(h.insert().values(**values).returning(h.c.seq)).scalar_one()
        except sa.exc.IntegrityError:
            raise ConflictError(move.prev_seq) from None
        return replace(move, seq=int(seq), when=_dt(now), expires_us=values["expires_us"])

    def settle(self, seq: int, state: str, note: str | None = None) -> bool:
        """Move record ``seq`` from ``intent`` to ``state``; False when someone settled it first."""
        h = self.t["history"]
        values: dict[str, Any] = {"state": state, "updated_us": _now_us(), "expires_us": 0}
        if note is not None:
            values["note"] = note
        with self._begin() as conn:
            n = conn.execute(h.update().where(h.c.seq == seq, h.c.state == "intent").values(**values)).rowcount
        return n == 1

    def renew(self, seq: int, holder: str, lease: float, *, new_holder: str | None = None) -> bool:
        """Extend ``holder``'s lease on intent ``seq`` (handing it to ``new_holder`` if given).

        False when the row was settled or taken by someone else meanwhile: the caller must not
        act on it. A repairer takes the row over this way, so a stalled original writer that
        wakes up later finds it is no longer the holder.
        """
        h = self.t["history"]
        now = _now_us()
        with self._begin() as conn:
            n = conn.execute(
                h.update()
                .where(h.c.seq == seq, h.c.state == "intent", h.c.holder == holder)
                .values(expires_us=now + int(lease * 1_000_000), updated_us=now, holder=new_holder or holder)
            ).rowcount
        return n == 1

    def get_move(self, seq: int) -> AliasMove | None:
        h = self.t["history"]
        with self._begin() as conn:
            row = conn.execute(sa.select(h).where(h.c.seq == seq)).first()
        return None if row is None else self._move(row)

    # -- registrations ------------------------------------------------------------------------------
    @staticmethod
    def _registration(row: Any) -> Registration:
        return Registration(
            model_name=row.model_name,
            key=row.idempotency_key,
            state=row.state,
            version=row.version,
            run_id=row.run_id,
            model_uri=row.model_uri,
            artifact_sha256=row.artifact_sha256,
            serialization=row.serialization,
            trusted_types=tuple(json.loads(row.trusted_types or "[]")),
            gates_passed=bool(row.gates_passed),
            validation_passed=bool(row.validation_passed),
            refusals=tuple(json.loads(row.refusals or "[]")),
            code_version=row.code_version,
            holder=row.holder,
            expires_us=int(row.expires_us),
            registered_at=_dt(row.registered_us),
        )

    def registration(self, model: str, *, key: str | None = None, version: str | None = None) -> Registration | None:
        """The record for an idempotency key, or for a registered version."""
        if self.absent():
            return None
        r = self.t["registrations"]
        q = sa.select(r).where(r.c.model_name == model)
        q = q.where(r.c.idempotency_key == key) if key is not None else q.where(r.c.version == str(version))
        with self._begin() as conn:
            row = conn.execute(q).first()
        return None if row is None else self._registration(row)

    def registrations(self, model: str) -> dict[str, Registration]:
        """Every registered version's record, by version."""
        if self.absent():
            return {}
        r = self.t["registrations"]
        q = sa.select(r).where(r.c.model_name == model, r.c.version.is_not(None))
        with self._begin() as conn:
            return {row.version: self._registration(row) for row in conn.execute(q)}

    def claim(
        self,
        model: str,
        key: str,
        *,
        gates_passed: bool,
        validation_passed: bool,
        refusals: Sequence[str],
        code_version: str,
        lease: float = REGISTRATION_LEASE_SECONDS,
    ) -> Registration:
        """Claim ``key`` for this process, or return the existing record (which may be someone else's).

        A claim whose holder is gone (or whose lease ran out) is taken over: its verdict is
        replaced by this one, its run (if it finished logging) is kept.
        """
        r = self.t["registrations"]
        me = holder_id()
        now = _now_us()
        verdict = {
            "gates_passed": bool(gates_passed),
            "validation_passed": bool(validation_passed),
            "refusals": json.dumps(list(refusals)),
            "code_version": code_version[:64],
            "holder": me,
            "expires_us": now + int(lease * 1_000_000),
        }
        try:
            with self._begin() as conn:
                conn.execute(
                    r.insert().values(
                        model_name=model,
                        idempotency_key=key,
                        state="intent",
                        trusted_types="[]",
                        registered_us=now,
                        **verdict,
                    )
                )
        except sa.exc.IntegrityError:
            existing = self.registration(model, key=key)
            if existing is None:  # pragma: no cover - deleted in between
                raise TransientError(f"registration of {key} changed while claiming it; retry") from None
            if existing.state == "registered":
                return existing
            if not settleable(existing.holder, existing.expires_us, ("registration", key)):
                return existing  # someone alive is registering it: the caller waits
            with self._begin() as conn:
                n = conn.execute(
                    r.update()
                    .where(
                        r.c.model_name == model,
                        r.c.idempotency_key == key,
                        r.c.holder == existing.holder,
                        r.c.state != "registered",
                    )
                    .values(**verdict)
                ).rowcount
            if n != 1:
                return self.registration(model, key=key) or existing
        out = self.registration(model, key=key)
        # Claimed by this process: the caller proceeds (``holder == holder_id()``).
        assert out is not None
        return out

    def update_registration(self, model: str, key: str, **values: Any) -> None:
        """Record progress of a claimed registration (run logged, version registered)."""
        r = self.t["registrations"]
        if "trusted_types" in values:
            values["trusted_types"] = json.dumps(list(values["trusted_types"] or []))
        if values.get("state") == "registered":
            values["expires_us"] = 0
            values["registered_us"] = _now_us()
        with self._begin() as conn:
            conn.execute(r.update().where(r.c.model_name == model, r.c.idempotency_key == key).values(**values))


@dataclass(frozen=True)
class WeeklyDecision:
    """What the trigger policy decided for one week (test window) of one model.

    ``figures`` are the week's numbers for the trend panel of the reports (see
    :func:`driftline.story.week_figures`): the primary metric of the champion (and of a
    candidate) on the week's refreshed test set, and each feature's PSI; empty for older rows.
    """

    week: str
    champion_version: str | None
    action: str
    codes: tuple[str, ...]
    state: Mapping[str, float] = field(default_factory=dict)  # what the policy carries over (the metric CUSUM)
    figures: Mapping[str, Any] = field(default_factory=dict)


def _payload(raw_text: str | None) -> tuple[list[str], dict[str, float], dict[str, Any]]:
    """``codes`` holds a JSON list of codes, or {"codes": [...], "state": {...}, "figures": {...}}."""
    raw = json.loads(raw_text or "[]")
    if isinstance(raw, dict):
        return list(raw.get("codes", [])), dict(raw.get("state") or {}), dict(raw.get("figures") or {})
    return list(raw), {}, {}


def _decision(row: Any) -> WeeklyDecision:
    codes, state, figures = _payload(row.codes)
    return WeeklyDecision(row.week, row.champion_version, row.action, tuple(codes), state, figures)


def _encode(codes: Sequence[str], state: Mapping[str, float] | None, figures: Mapping[str, Any] | None) -> str:
    payload: Any = list(codes)
    if state or figures:
        payload = {"codes": list(codes), "state": {k: float(v) for k, v in (state or {}).items()}}
        if figures:
            payload["figures"] = dict(figures)
    return json.dumps(payload, allow_nan=False, default=str)


class DecisionLog:
    """The weekly decisions, so a concern that persists can escalate (``weekly_decisions`` table)."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    def record(
        self,
        model: str,
        week: str,
        champion_version: str | None,
        action: str,
        codes: Sequence[str],
        state: Mapping[str, float] | None = None,
        figures: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep the week's decision; a rerun of the same week replaces it (the runs agree by construction).

        Figures already recorded for the week (e.g. a candidate's metric) are kept unless replaced.
        """
        d = self.store.t["decisions"]
        with self.store._begin() as conn:
            old = conn.execute(sa.select(d.c.codes).where(d.c.model_name == model, d.c.week == week)).first()
            merged = {**(_payload(old.codes)[2] if old is not None else {}), **dict(figures or {})}
            row = {
                "model_name": model,
                "week": week,
                "champion_version": champion_version,
                "action": action,
                "codes": _encode(codes, state, merged),
                "recorded_us": _now_us(),
            }
            conn.execute(d.delete().where(d.c.model_name == model, d.c.week == week))
            conn.execute(d.insert().values(**row))

    def annotate(self, model: str, week: str, figures: Mapping[str, Any]) -> bool:
        """Merge ``figures`` into the week's recorded decision; False when the week has no row yet."""
        d = self.store.t["decisions"]
        with self.store._begin() as conn:
            old = conn.execute(sa.select(d.c.codes).where(d.c.model_name == model, d.c.week == week)).first()
            if old is None:
                return False
            codes, state, existing = _payload(old.codes)
            conn.execute(
                d.update()
                .where(d.c.model_name == model, d.c.week == week)
                .values(codes=_encode(codes, state, {**existing, **dict(figures)}))
            )
        return True

    def before(self, model: str, week: str, limit: int = 52) -> list[WeeklyDecision]:
        """Decisions of the weeks before ``week``, newest first."""
        if self.store.absent():
            return []
        d = self.store.t["decisions"]
        q = sa.select(d).where(d.c.model_name == model, d.c.week < week).order_by(d.c.week.desc()).limit(limit)
        with self.store._begin() as conn:
            return [_decision(r) for r in conn.execute(q)]

    def until(self, model: str, week: str, limit: int = 26) -> list[WeeklyDecision]:
        """Decisions of the last ``limit`` weeks up to and including ``week``, oldest first (the trend)."""
        if self.store.absent():
            return []
        d = self.store.t["decisions"]
        q = sa.select(d).where(d.c.model_name == model, d.c.week <= week).order_by(d.c.week.desc()).limit(limit)
        with self.store._begin() as conn:
            return [_decision(r) for r in conn.execute(q)][::-1]


def wait(deadline: float, what: str) -> None:
    """Sleep a little before looking again, or raise TransientError once ``deadline`` passed."""
    if time.monotonic() >= deadline:
        raise TransientError(f"registry is busy: {what}; retry")
    time.sleep(0.02)
