"""Peer libraries in their own virtual environments, timed as subprocesses on the same Parquet files.

Evidently 0.7 does not import under pandas 3, and NannyML 0.13 pins its own stack, so each peer
gets a venv under ``.bench-venvs/<name>`` (ignored by git), created on first use with pip.
``--peer-script`` mode (run inside that venv) loads the files, times the peer and prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".bench-venvs"
REQUIREMENTS = {
    "evidently": ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"],
    "nannyml": ["nannyml>=0.13,<0.14", "statsmodels", "pyarrow"],
}


def ensure_venv(name: str) -> Path | None:
    """Python of the peer's venv, creating it if needed; None (with a message) if it cannot be built."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists():
        return python
    VENVS.mkdir(parents=True, exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS[name]], check=True)
        subprocess.run([str(python), "-c", f"import {name}"], check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"peer {name}: cannot install ({e})", file=sys.stderr)
        return None
    marker.write_text(" ".join(REQUIREMENTS[name]))
    return python


def run_peer(name: str, ref: Path, cur: Path, numeric: list[str], categorical: list[str], repeat: int) -> dict | None:
    """Time a peer in its venv; returns its JSON report or None when it could not run."""
    python = ensure_venv(name)
    if python is None:
        return None
    spec = json.dumps(
        {"ref": str(ref), "cur": str(cur), "numeric": numeric, "categorical": categorical, "repeat": repeat}
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [str(python), __file__, "--peer", name, spec], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        print(f"peer {name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- code below runs inside the peer's venv (no driftline there) ------------------------------


def _evidently(spec: dict) -> dict:
    import warnings

    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    warnings.filterwarnings("ignore")
    ref = pd.read_parquet(spec["ref"])
    cur = pd.read_parquet(spec["cur"])
    cols = spec["numeric"] + spec["categorical"]
    times, build = [], []
    psi = {}
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        dd = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"])
        ref_ds = Dataset.from_pandas(ref, data_definition=dd)
        cur_ds = Dataset.from_pandas(cur, data_definition=dd)
        t1 = time.perf_counter()
        report = Report([ValueDrift(column=c, method="psi") for c in cols])
        snap = report.run(cur_ds, ref_ds)
        t2 = time.perf_counter()
        build.append(t1 - t0)
        times.append(t2 - t1)
        if not psi:
            for m in snap.dict()["metrics"]:
                value = m.get("value")
                psi[str(m.get("metric_id", ""))] = value if isinstance(value, (int, float)) else None
    return {
        "peer": "evidently",
        "version": evidently.__version__,
        "pandas": pd.__version__,
        "run": times,
        "dataset": build,
        "values": psi,
    }


def _nannyml(spec: dict) -> dict:
    import warnings

    import nannyml
    import pandas as pd

    warnings.filterwarnings("ignore")
    ref = pd.read_parquet(spec["ref"])
    cur = pd.read_parquet(spec["cur"])
    cols = spec["numeric"] + spec["categorical"]
    fit_t, calc_t = [], []
    js = {}
    for _ in range(spec["repeat"]):
        calc = nannyml.UnivariateDriftCalculator(
            column_names=cols,
            treat_as_categorical=spec["categorical"],
            continuous_methods=["jensen_shannon"],
            categorical_methods=["jensen_shannon"],
            chunk_number=1,
        )
        t0 = time.perf_counter()
        calc.fit(ref)
        t1 = time.perf_counter()
        res = calc.calculate(cur)
        t2 = time.perf_counter()
        fit_t.append(t1 - t0)
        calc_t.append(t2 - t1)
        if not js:
            df = res.filter(period="analysis").to_df()
            for c in cols:
                js[c] = float(df[(c, "jensen_shannon", "value")].iloc[0])
    return {
        "peer": "nannyml",
        "version": nannyml.__version__,
        "pandas": pd.__version__,
        "fit": fit_t,
        "calculate": calc_t,
        "values": js,
    }


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--peer":
    fn = {"evidently": _evidently, "nannyml": _nannyml}[sys.argv[2]]
    print(json.dumps(fn(json.loads(sys.argv[3]))))
