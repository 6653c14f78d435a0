"""Seeded benchmark data for the drift engine: 14 numeric and 6 categorical features.

Reference and current windows come from the same generator; the current window drifts on
n0 (mean +0.3 sd), n1 (scale x1.5), n2 (log-normal shape), n3 (missing 2% -> 8%), c0 (shares
move) and c1 (2% unseen values). The other 14 features are unchanged. Files are written under
``.bench-data/`` (ignored by git) or wherever ``--data-dir`` points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftline.contract import Contract, Feature, Target

NUMERIC = [f"n{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
CARDINALITY = [10, 20, 30, 40, 50, 25]
DRIFTED = ["n0", "n1", "n2", "n3", "c0", "c1"]
DATA_DIR = Path(__file__).resolve().parents[2] / ".bench-data" / "drift"


def contract() -> Contract:
    """A contract naming the 20 benchmark features (ids, time and target are not in the data)."""
    feats = {n: Feature(type="numeric", nullable=True) for n in NUMERIC}
    feats |= {c: Feature(type="categorical", nullable=True) for c in CATEGORICAL}
    return Contract(
        name="bench", entity_id="id", request_id="rid", timestamp="ts", target=Target(name="y"), features=feats
    )


def generate(rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """One window of ``rows`` rows; ``drifted`` applies the shifts listed in the module docstring."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        kind = i % 4
        if kind == 0:
            x = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            x = rng.lognormal(1.0, 0.6, rows)
        elif kind == 2:
            x = rng.poisson(4.0, rows).astype(np.float64)
        else:
            x = rng.gamma(2.0, 50.0, rows)
        cols[name] = x
    if drifted:
        cols["n0"] = cols["n0"] + 0.3
        cols["n1"] = cols["n1"] * 1.5
        cols["n2"] = rng.lognormal(1.0, 0.9, rows)
    miss = 0.08 if drifted else 0.02
    cols["n3"][rng.random(rows) < miss] = np.nan
    for k, (name, card) in enumerate(zip(CATEGORICAL, CARDINALITY, strict=True)):
        values = np.array([f"{name}_v{j:02d}" for j in range(card)], dtype=object)
        w = 1.0 / np.arange(1, card + 1) ** 0.8
        if drifted and k == 0:
            w = w[::-1]
        codes = rng.choice(card, rows, p=w / w.sum())
        col = values[codes]
        if drifted and k == 1:
            col = col.copy()
            col[rng.random(rows) < 0.02] = "c1_new"
        cols[name] = col
    frame = pd.DataFrame(cols)
    for name in CATEGORICAL:
        frame[name] = frame[name].astype("str")
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=262_144)
    return path


def write_big(path: Path, rows: int, seed: int, chunk: int = 1_000_000) -> Path:
    """Write a drifted window of ``rows`` rows chunk by chunk (bounded memory while writing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        done = 0
        part = 0
        while done < rows:
            n = min(chunk, rows - done)
            table = pa.Table.from_pandas(generate(n, seed + part, drifted=True), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=262_144)
            done += n
            part += 1
    finally:
        if writer is not None:
            writer.close()
    return path
