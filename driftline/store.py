"""The production store: predictions log, outcomes and quarantine (SQLAlchemy 2 Core).

One code path for SQLite (the embedded default, WAL mode) and PostgreSQL (by URL). Tables
are shaped by the feature contract: the predictions log has one column per feature.
Times are stored as integer microseconds since the Unix epoch (UTC): they compare and sort
the same on every engine and read back into pandas without per-row parsing. The natural
key of a logged prediction is its request id, so appending the same rows twice stores them
once; outcomes are keyed by request id too.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from driftline.contract import LOG_COLUMNS, Contract
from driftline.errors import DriftlineError, TransientError

MODEL_COLUMNS = LOG_COLUMNS[:-1]
OUTCOME_TIME = LOG_COLUMNS[-1]
_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
_INSERT_CHUNK = 50_000
# Driver messages that say "try again later" rather than "this will never work".
_TRANSIENT = re.compile(r"(?i)connection refused|could not connect|timeout|timed out|database is locked|server closed")


@dataclass(frozen=True)
class AppendResult:
    """What an append did: rows newly stored and rows already present (same key)."""

    stored: int
    duplicates_skipped: int


def to_micros(values: Any) -> np.ndarray:
    """Datetime-like values (naive = UTC) to int64 microseconds; NaT becomes the int64 minimum."""
    s = pd.to_datetime(pd.Series(values), utc=True, format="mixed") if not _is_dt(values) else values
    s = pd.Series(s)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[us]").astype("int64")


def _is_dt(values: Any) -> bool:
    return isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values)


def from_micros(values: Any) -> pd.Series:
    """int64 microseconds to tz-naive UTC datetimes."""
    arr = np.asarray(values, dtype="float64")
    out = np.full(arr.shape, np.datetime64("NaT"), dtype="datetime64[us]")
    ok = ~np.isnan(arr)
    out[ok] = _EPOCH + arr[ok].astype("int64").astype("timedelta64[us]")
    return pd.Series(out)


def _ts_param(ts: Any) -> int:
    return int(to_micros([ts])[0])


class Store:
    """Predictions log, outcomes and quarantine for one contract, at one SQLAlchemy URL."""

    def __init__(self, url: str, contract: Contract, *, fast_read: bool = True) -> None:
        self.url = url
        self.contract = contract
        self.fast_read = fast_read
        self._engine: Engine | None = None
        self._tables: dict[str, sa.Table] | None = None

    @classmethod
    def from_settings(cls, settings: Any, contract: Contract) -> Store:
        return cls(settings.store_url, contract)

    # -- engine and schema ---------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.url.startswith("sqlite:///"):
                from pathlib import Path

                path = self.url.removeprefix("sqlite:///")
                if path and path != ":memory:":
                    try:
                        Path(path).parent.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise DriftlineError(
                            f"store URL {self.url!r}: cannot create folder {Path(path).parent} ({e.strerror or e})"
                        ) from None
            try:
                self._engine = sa.create_engine(self.url)
            except Exception as e:  # bad URL or missing driver
                raise DriftlineError(f"store URL {self.url!r}: {e}") from None
            if self._engine.dialect.name == "sqlite":

                @sa.event.listens_for(self._engine, "connect")
                def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA busy_timeout=30000")  # first, so the next pragmas wait too
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.close()

        return self._engine

    @property
    def tables(self) -> dict[str, sa.Table]:
        if self._tables is None:
            self._tables = self._define(sa.MetaData())
        return self._tables

    def _define(self, md: sa.MetaData) -> dict[str, sa.Table]:
        c = self.contract
        kinds = {"numeric": sa.Float, "categorical": sa.String, "boolean": sa.Boolean}
        feature_cols = [sa.Column(n, kinds[f.type](), nullable=True) for n, f in c.features.items()]
        predictions = sa.Table(
            "predictions",
            md,
            sa.Column(c.request_id, sa.String, primary_key=True),
            sa.Column(c.entity_id, sa.String, nullable=False, index=True),
            sa.Column(c.timestamp, sa.BigInteger, nullable=False, index=True),
            *feature_cols,
            sa.Column("model_name", sa.String),
            sa.Column("model_version", sa.String),
            sa.Column("variant", sa.String),
            sa.Column("score", sa.Float),
            sa.Column("predicted_label", sa.String),  # text, like the target: "1", "fraud", "True"
            sa.Column("latency_ms", sa.Float),
        )
        outcomes = sa.Table(
            "outcomes",
            md,
            # Keyed by request and observation time: the same outcome twice is stored once, a
            # later correction is kept beside it (the label join takes the latest observed).
            sa.Column(c.request_id, sa.String, primary_key=True),
            sa.Column(c.entity_id, sa.String, index=True),
            sa.Column(c.target.name, sa.String, nullable=False),
            sa.Column(OUTCOME_TIME, sa.BigInteger, primary_key=True, index=True),
        )
        quarantine = sa.Table(
            "quarantine",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("source", sa.String, nullable=False),
            sa.Column("row_number", sa.Integer),
            sa.Column("reason", sa.String, nullable=False, index=True),
            sa.Column("raw", sa.Text, nullable=False),
            sa.Column("quarantined_at", sa.BigInteger, nullable=False),
        )
        meta = sa.Table(
            "store_meta",
            md,
            sa.Column("key", sa.String, primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        rollout = sa.Table(
            "rollout_scores",
            md,
            # What each variant scored while a rollout ran, keyed by request and variant: the
            # served answer (champion or challenger) and the challenger's shadow score of the same
            # request. served_us is when the gateway scored it, so a rollout step reads its own
            # interval whatever event times the requests carry.
            sa.Column("request_id", sa.String, primary_key=True),
            sa.Column("variant", sa.String, primary_key=True),
            sa.Column("model_name", sa.String, nullable=False),
            sa.Column("model_version", sa.String, nullable=False),
            sa.Column("entity_id", sa.String, nullable=False),
            sa.Column("score", sa.Float),
            sa.Column("predicted_label", sa.String),
            sa.Column("latency_ms", sa.Float),
            sa.Column("error", sa.String),
            sa.Column("served_us", sa.BigInteger, nullable=False, index=True),
        )
        return {
            "predictions": predictions,
            "outcomes": outcomes,
            "quarantine": quarantine,
            "store_meta": meta,
            "rollout_scores": rollout,
        }

    def create(self) -> Store:
        """Create missing tables; refuse a store that was made for a different contract."""
        t = self.tables
        try:
            with self.engine.begin() as conn:
                t["predictions"].metadata.create_all(conn)
                row = conn.execute(sa.select(t["store_meta"].c.value).where(t["store_meta"].c.key == "columns")).first()
                mine = json.dumps(self._column_signature(), sort_keys=True)
                if row is None:
                    conn.execute(t["store_meta"].insert(), [{"key": "columns", "value": mine}])
                elif row[0] != mine:
                    raise DriftlineError(
                        f"store {self._safe_url()} was created for other columns than contract "
                        f"{self.contract.name!r}; use another store URL or migrate it"
                    )
        except sa.exc.OperationalError as e:
            reason = " ".join(str(e.orig).split())  # drivers' messages span lines
            kind = TransientError if _TRANSIENT.search(reason) else DriftlineError
            raise kind(f"store {self._safe_url()}: cannot connect ({reason})") from None
        return self

    def _column_signature(self) -> dict[str, Any]:
        c = self.contract
        return {
            "request_id": c.request_id,
            "entity_id": c.entity_id,
            "timestamp": c.timestamp,
            "target": c.target.name,
            "features": {n: f.type for n, f in c.features.items()},
        }

    def _safe_url(self) -> str:
        try:
            return sa.make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<store>"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction across several appends/quarantines: all or nothing."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as own:
                yield own

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- writing -------------------------------------------------------------------------
    def _rows(self, frame: pd.DataFrame, table: sa.Table, time_columns: Sequence[str]) -> tuple[list[str], list[tuple]]:
        """Column-wise conversion to driver-native values, then rows as tuples."""
        cols: dict[str, list[Any]] = {}
        n = len(frame)
        for col in table.columns:
            if col.name not in frame.columns:
                if isinstance(col.type, sa.Integer) and col.primary_key and col.autoincrement:
                    continue
                cols[col.name] = [None] * n
                continue
            s = frame[col.name]
            if col.name in time_columns:
                cols[col.name] = to_micros(s).tolist()
            elif isinstance(col.type, sa.Float):
                arr = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                cols[col.name] = [None if math.isnan(v) else v for v in arr.tolist()]
            elif isinstance(col.type, sa.Boolean):
                cols[col.name] = [None if pd.isna(v) else bool(v) for v in s.tolist()]
            elif isinstance(col.type, sa.Integer):
                cols[col.name] = [None if pd.isna(v) else int(v) for v in s.tolist()]
            else:
                cols[col.name] = [None if _isna(v) else str(v) for v in s.tolist()]
        return list(cols), list(zip(*cols.values(), strict=True))

    def _insert_sql(self, table: sa.Table, names: list[str]) -> str:
        """INSERT that skips rows whose key exists, in the driver's own parameter style.

        Executed with the driver's executemany on plain tuples: SQLAlchemy's per-row
        parameter processing costs more than the database work at a million rows.
        """
        d = self.engine.dialect
        q = d.identifier_preparer
        cols = ", ".join(q.quote(n) for n in names)
        marks = ", ".join("?" if d.paramstyle == "qmark" else "%s" for _ in names)
        if d.name == "sqlite":
            return f"INSERT OR IGNORE INTO {q.format_table(table)} ({cols}) VALUES ({marks})"
        if d.name == "postgresql":
            return f"INSERT INTO {q.format_table(table)} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        raise DriftlineError(f"store dialect {d.name!r} is not supported (use sqlite or postgresql)")

    def _append(
        self, table: sa.Table, frame: pd.DataFrame, times: Sequence[str], conn: Connection | None
    ) -> AppendResult:
        if frame.empty:
            return AppendResult(0, 0)
        names, rows = self._rows(frame, table, times)
        sql = self._insert_sql(table, names)
        stored = 0
        with self._conn(conn) as c:
            for i in range(0, len(rows), _INSERT_CHUNK):
                # The driver's rowcount for an executemany is the rows this statement inserted
                # (skipped keys do not count), so concurrent writers cannot blur the numbers.
                stored += max(0, int(c.exec_driver_sql(sql, rows[i : i + _INSERT_CHUNK]).rowcount))
        return AppendResult(stored=stored, duplicates_skipped=len(rows) - stored)

    def append_predictions(self, frame: pd.DataFrame, conn: Connection | None = None) -> AppendResult:
        """Append logged predictions (ids, time, features, optional model fields); skip known request ids."""
        return self._append(self.tables["predictions"], frame, [self.contract.timestamp], conn)

    def append_outcomes(self, frame: pd.DataFrame, conn: Connection | None = None) -> AppendResult:
        """Append outcomes (request id, entity id, label, observed_time); skip ones already stored.

        A row with a known request id but a later ``observed_time`` is a correction and is kept.
        """
        return self._append(self.tables["outcomes"], frame, [OUTCOME_TIME], conn)

    ROLLOUT_COLUMNS = (
        "request_id",
        "variant",
        "model_name",
        "model_version",
        "entity_id",
        "score",
        "predicted_label",
        "latency_ms",
        "error",
        "served_us",
    )

    def append_rollout_scores(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None) -> int:
        """Append rollout scores (see the ``rollout_scores`` table); a known (request, variant) is skipped."""
        if not rows:
            return 0
        names = list(self.ROLLOUT_COLUMNS)
        sql = self._insert_sql(self.tables["rollout_scores"], names)
        values = [tuple(r.get(n) for n in names) for r in rows]
        with self._conn(conn) as c:
            return max(0, int(c.exec_driver_sql(sql, values).rowcount))

    def read_rollout_scores(self, model_name: str, since_us: int = 0, until_us: int | None = None) -> pd.DataFrame:
        """Rollout scores of ``model_name`` served in [since_us, until_us), oldest first."""
        t = self.tables["rollout_scores"]
        q = sa.select(*[t.c[n] for n in self.ROLLOUT_COLUMNS]).where(
            t.c.model_name == model_name, t.c.served_us >= int(since_us)
        )
        if until_us is not None:
            q = q.where(t.c.served_us < int(until_us))
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(t.c.served_us, t.c.request_id)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(self.ROLLOUT_COLUMNS))

    def prediction_features(self, request_ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
        """The request id and ``columns`` of the logged predictions with these ids."""
        t = self.tables["predictions"]
        rid = self.contract.request_id
        cols = [rid, *[c for c in columns if c != rid]]
        ids = list(dict.fromkeys(str(i) for i in request_ids))
        out: list[tuple] = []
        with self.engine.connect() as c:
            for i in range(0, len(ids), 5000):
                q = sa.select(*[t.c[n] for n in cols]).where(t.c[rid].in_(ids[i : i + 5000]))
                out.extend(tuple(r) for r in c.execute(q))
        return pd.DataFrame(out, columns=cols)

    def labels_for(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The latest observed label of each request id that has one."""
        if not request_ids:
            return {}
        t = self.tables["outcomes"]
        rid, target = self.contract.request_id, self.contract.target.name
        out: dict[str, tuple[int, str]] = {}
        ids = list(dict.fromkeys(str(i) for i in request_ids))
        with self.engine.connect() as c:
            for i in range(0, len(ids), 5000):
                q = sa.select(t.c[rid], t.c[target], t.c[OUTCOME_TIME]).where(t.c[rid].in_(ids[i : i + 5000]))
                for r, label, when in c.execute(q):
                    if r not in out or when > out[r][0]:
                        out[r] = (when, label)
        return {k: v[1] for k, v in out.items()}

    def quarantine(
        self,
        raw: pd.DataFrame,
        reasons: Sequence[str],
        source: str,
        conn: Connection | None = None,
        row_numbers: Sequence[int | None] | None = None,
    ) -> int:
        """Keep rows that cannot be used, each as JSON with its reason; returns how many."""
        if len(raw) != len(reasons):
            raise ValueError("one reason per quarantined row")
        if len(raw) == 0:
            return 0
        now = _ts_param(datetime.now(UTC))
        texts = raw.to_json(orient="records", lines=True, date_format="iso", default_handler=str).splitlines()
        numbers = list(row_numbers) if row_numbers is not None else [None] * len(raw)
        records = [
            {"source": source, "row_number": n, "reason": r, "raw": t, "quarantined_at": now}
            for t, r, n in zip(texts, reasons, numbers, strict=True)
        ]
        with self._conn(conn) as c:
            for i in range(0, len(records), _INSERT_CHUNK):
                c.execute(self.tables["quarantine"].insert(), records[i : i + _INSERT_CHUNK])
        return len(records)

    # -- small shared state ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A value kept in ``store_meta`` (shared by every worker on this store), or None."""
        t = self.tables["store_meta"]
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.value).where(t.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Replace a ``store_meta`` value in one transaction (readers see the old or the new one)."""
        t = self.tables["store_meta"]
        with self.engine.begin() as c:
            c.execute(t.delete().where(t.c.key == key))
            c.execute(t.insert(), [{"key": key, "value": value}])

    # -- reading -------------------------------------------------------------------------
    def count(self, table: str) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(self.tables[table])).scalar_one())

    def existing_request_ids(self, ids: Sequence[str], table: str = "predictions") -> set[str]:
        """Which of these request ids are already stored (checked in batches)."""
        t = self.tables[table]
        key = t.c[self.contract.request_id]
        found: set[str] = set()
        ids = list(ids)
        with self.engine.connect() as c:
            for i in range(0, len(ids), 5000):
                found.update(r[0] for r in c.execute(sa.select(key).where(key.in_(ids[i : i + 5000]))))
        return found

    def _select(self, table: str, time_col: str, start: Any, end: Any, columns: Sequence[str] | None) -> sa.Select:
        t = self.tables[table]
        cols = [t.c[n] for n in columns] if columns else list(t.c)
        q = sa.select(*cols)
        if start is not None:
            q = q.where(t.c[time_col] >= _ts_param(start))
        if end is not None:
            q = q.where(t.c[time_col] < _ts_param(end))
        return q

    def _frame(self, rows: list[tuple] | pd.DataFrame, names: list[str], table: str) -> pd.DataFrame:
        """Typed frame from driver rows (or an Arrow-built frame): times, floats, booleans, ints."""
        if isinstance(rows, pd.DataFrame):
            frame = rows
        else:
            frame = pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
        t = self.tables[table]
        for n in names:
            col = t.c[n]
            if n in (self.contract.timestamp, OUTCOME_TIME, "quarantined_at"):
                frame[n] = from_micros(frame[n]).to_numpy()
            elif isinstance(col.type, sa.Float):
                frame[n] = pd.to_numeric(frame[n], errors="coerce").astype("float64")
            elif isinstance(col.type, sa.Boolean):
                frame[n] = pd.to_numeric(frame[n].astype(object), errors="coerce").astype("float64").astype("boolean")
            elif isinstance(col.type, sa.Integer) and n != "id":
                frame[n] = pd.array(pd.to_numeric(frame[n], errors="coerce"), dtype="Int64")
            elif isinstance(col.type, sa.String | sa.Text) and not (
                pd.api.types.is_string_dtype(frame[n]) or frame[n].dtype == object
            ):
                frame[n] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
        return frame

    def iter_window(
        self,
        table: str = "predictions",
        start: Any = None,
        end: Any = None,
        columns: Sequence[str] | None = None,
        chunksize: int = 200_000,
    ) -> Iterator[pd.DataFrame]:
        """Stream a time window [start, end) in chunks of bounded size (in storage order)."""
        time_col = self.contract.timestamp if table == "predictions" else OUTCOME_TIME
        q = self._select(table, time_col, start, end, columns)
        names = [c.name for c in q.selected_columns]
        with self.engine.connect() as c:
            result = c.execution_options(stream_results=True, yield_per=chunksize).execute(q)
            for part in result.partitions(chunksize):
                yield self._frame([tuple(r) for r in part], names, table)

    def read_window(
        self, table: str = "predictions", start: Any = None, end: Any = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """A time window [start, end) of predictions or outcomes as one DataFrame.

        Rows are fetched through the driver's cursor in bulk (no per-row ORM objects) and
        converted column by column.
        """
        time_col = self.contract.timestamp if table == "predictions" else OUTCOME_TIME
        q = self._select(table, time_col, start, end, columns)
        names = [c.name for c in q.selected_columns]
        compiled = str(q.compile(self.engine, compile_kwargs={"literal_binds": True}))
        fast = self._read_arrow(compiled) if self.fast_read else None
        if fast is not None:
            frame = self._frame(fast, names, table)
        else:
            with self.engine.connect() as c:
                cur = c.connection.dbapi_connection.cursor()
                try:
                    cur.execute(compiled)
                    rows = cur.fetchall()
                finally:
                    cur.close()
            frame = self._frame(rows, names, table)
        # Sorting here rather than in SQL: an index-ordered scan is several times slower.
        return frame.sort_values([time_col, self.contract.request_id], kind="stable", ignore_index=True)

    def _read_arrow(self, sql: str) -> pd.DataFrame | None:
        """Columnar read through an ADBC driver when one is installed (several times faster
        than building a Python tuple per row); None means use the DBAPI cursor instead."""
        url = sa.make_url(self.url)
        name = self.engine.dialect.name
        try:
            if name == "sqlite" and url.database and url.database != ":memory:":
                import adbc_driver_sqlite.dbapi as adbc

                # Read-only: this is a second SQLite library in the process. A writable
                # connection of it that closes last (by its own count) would checkpoint and
                # remove the WAL under the other library's open connections (disk I/O errors).
                con = adbc.connect("file:" + urllib.parse.quote(url.database) + "?mode=ro")
            elif name == "postgresql":
                import adbc_driver_postgresql.dbapi as adbc

                con = adbc.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
            else:
                return None
        except ImportError:
            return None
        try:
            cur = con.cursor()
            if name == "sqlite":
                # One batch (up to 1e8 rows) so column types are inferred from every row, not the first few.
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "100000000"})
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            cur.close()
        finally:
            con.close()
        return table.to_pandas()

    def read_predictions(
        self, start: Any = None, end: Any = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        return self.read_window("predictions", start, end, columns)

    def read_outcomes(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Outcomes observed in [start, end)."""
        return self.read_window("outcomes", start, end)

    def read_quarantine(self, source: str | None = None) -> pd.DataFrame:
        t = self.tables["quarantine"]
        q = sa.select(t)
        if source is not None:
            q = q.where(t.c.source == source)
        with self.engine.connect() as c:
            rows = [tuple(r) for r in c.execute(q.order_by(t.c.id))]
        return self._frame(rows, [col.name for col in t.columns], "quarantine")

    def time_bounds(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Earliest and latest logged prediction time, or None when the log is empty."""
        t = self.tables["predictions"]
        col = t.c[self.contract.timestamp]
        with self.engine.connect() as c:
            lo, hi = c.execute(sa.select(sa.func.min(col), sa.func.max(col))).one()
        if lo is None:
            return None
        return pd.Timestamp(from_micros([lo])[0]), pd.Timestamp(from_micros([hi])[0])


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT
