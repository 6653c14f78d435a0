"""Ingest 1M simulated rows from Parquet into SQLite and read a 1M-row window back.

Peers in the same run: pandas ``DataFrame.to_sql`` / ``pd.read_sql`` on an identical table,
and a plain ``sqlite3`` executemany / fetchall pass (the floor: no checks, no conversion).

    .venv/bin/python bench/bench_store.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import pandas as pd

from driftline.ingest import ingest_files
from driftline.simulate import simulate, write_simulation
from driftline.store import Store


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    users = int(args.rows / (10 * 0.85)) + 1
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        sim = simulate(weeks=10, users=users, scenarios="stable", seed=0)
        files = write_simulation(sim, root / "sim")
        n = len(sim.traffic)
        print(f"rows: {n:,}")

        store = Store(f"sqlite:///{root / 'store.db'}", sim.contract)
        t_ingest, rep = timed(lambda: ingest_files([files["traffic"]], sim.contract, store))
        assert rep.stored == n, rep.to_dict()

        frame = pd.read_parquet(files["traffic"])
        con = sqlite3.connect(root / "peer.db")
        t_to_sql, _ = timed(lambda: frame.to_sql("p", con, index=False, chunksize=50_000))
        con.commit()

        con2 = sqlite3.connect(root / "floor.db")
        cols = list(frame.columns)
        con2.execute(f"CREATE TABLE f ({', '.join(cols)})")
        rows = list(frame.assign(event_time=frame["event_time"].astype("int64")).itertuples(index=False, name=None))
        t_floor, _ = timed(lambda: con2.executemany(f"INSERT INTO f VALUES ({', '.join('?' * len(cols))})", rows))
        con2.commit()

        t_read, back = timed(lambda: store.read_predictions())
        assert len(back) == n
        t_read_sql, _ = timed(lambda: pd.read_sql("SELECT * FROM p", con))
        t_fetch, _ = timed(lambda: con2.execute("SELECT * FROM f").fetchall())

        print(f"{'what':58s} {'s':>7s} {'ratio':>7s}")
        print(f"{'driftline ingest (read, check every row, store)':58s} {t_ingest:7.2f} {1.0:7.2f}")
        print(f"{'pandas DataFrame.to_sql (no checks, no key)':58s} {t_to_sql:7.2f} {t_ingest / t_to_sql:7.2f}")
        print(f"{'sqlite3 executemany floor (no checks, no key)':58s} {t_floor:7.2f} {t_ingest / t_floor:7.2f}")
        print(f"{'driftline read_predictions (typed frame, sorted)':58s} {t_read:7.2f} {1.0:7.2f}")
        print(f"{'pandas read_sql (untyped times)':58s} {t_read_sql:7.2f} {t_read / t_read_sql:7.2f}")
        print(f"{'sqlite3 fetchall floor (tuples only)':58s} {t_fetch:7.2f} {t_read / t_fetch:7.2f}")


if __name__ == "__main__":
    main()
