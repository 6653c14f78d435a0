"""CLI whole-process times on the embedded default (SQLite store, MLflow on SQLite, no server).

Builds a registry of its own in a temporary folder (a ``driftline.yaml`` whose ``home`` holds
``store.db``, ``mlflow.db`` and ``mlartifacts/``), registers four tiny versions through
``ModelRegistry`` (champion moved 1 -> 2 -> 3 -> 4), then times each command as a whole process
(``subprocess.run`` from fork to exit, interpreter start included), interleaved round by round:

* ``--help``                       ``driftline --help``
* ``models list``                  the versions table
* ``models show 2``                every tag, metric and artifact of one version
* ``models history``               the alias history
* ``models rollback``              ``models rollback --to 3`` (a real compare-and-set move), then
                                   ``models promote 4`` untimed to put the champion back
* ``python -c pass``               the interpreter alone: the floor every command pays
* ``peer: import mlflow``          ``python -c "import mlflow"``: what any MLflow call costs first
* ``peer: MlflowClient read``      a bare ``MlflowClient(uri).get_registered_model(NAME)`` in a fresh
                                   interpreter: the floor of reading the embedded registry with MLflow
* ``peer: plain sqlite3 read``     ``python -c`` reading the model's aliases with the standard library's
                                   ``sqlite3``: the floor of reading it at all

After the rounds it checks that every rollback and reset is in the alias history, done, one
chain, and that ``champion`` is back on version 4. Targets (issue 15): each ``models`` command
≤ 1 s median, ``--help`` ≤ 0.3 s.

    .venv/bin/python bench/bench_cli.py [--repeats 9] [--baseline DIR]

``--baseline DIR`` also times every ``driftline`` command with ``PYTHONPATH=DIR`` (a copy of
another revision's ``driftline/`` package, e.g. ``git archive HEAD driftline | tar -x -C DIR``),
interleaved with the current code in the same rounds, so before and after share the machine's load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "bench-cli-churn"
TARGET_S = 1.0
HELP_TARGET_S = 0.3


def build_registry(root: Path) -> Path:
    """A settings file under ``root`` and four registered versions; returns the settings path."""
    import logging

    import numpy as np
    import pandas as pd
    import yaml
    from sklearn.linear_model import LogisticRegression

    from driftline.registry import ModelRegistry, Verdict
    from driftline.settings import load_settings

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    config = root / "driftline.yaml"
    config.write_text(yaml.safe_dump({"home": str(root / "home"), "model_name": NAME}))
    settings = load_settings(config)
    settings.ensure_home()
    reg = ModelRegistry.from_settings(settings)
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"tenure_days": rng.uniform(0, 100, 40), "sessions": rng.uniform(0, 10, 40)})
    y = (x["sessions"] < 5).astype(int)
    for i in (1, 2, 3, 4):
        reg.register_candidate(
            pipeline=LogisticRegression(C=float(i)).fit(x, y),
            input_example=x.head(3),
            params={"C": float(i)},
            metrics={"test.average_precision": 0.5 + i / 100, "test.roc_auc": 0.7 + i / 100},
            tags={"trigger": "bootstrap" if i == 1 else "schedule", "gate.passed": "true"},
            artifacts={"contract.json": {"name": "bench"}},
            verdict=Verdict(gates_passed=True),
            idempotency_key=f"bench-cli-{i}",
        )
        reg.promote(str(i), reason="bench setup", actor="bench")
    return config


def backend_name(config: Path) -> str:
    """Which registry backend the commands use on this database (sqlite3, or MLflow's client)."""
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings

    return type(ModelRegistry.from_settings(load_settings(config))._backend).__name__


def run(argv: list[str], env: dict[str, str]) -> float:
    """Seconds for one whole process; fails loudly when the command fails."""
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()[-600:]}")
    return elapsed


def check_history(config: Path, moves: int) -> None:
    """Every timed rollback and untimed reset is recorded, done, chained; champion is back on 4."""
    from driftline.registry import ModelRegistry
    from driftline.settings import load_settings

    reg = ModelRegistry.from_settings(load_settings(config))
    history = reg.history("champion")
    chained = all(b.prev_seq == a.seq for a, b in itertools.pairwise(history))
    kinds = [m.kind for m in history[4:]]
    if len(history) != moves or {m.state for m in history} != {"done"} or not chained:
        raise SystemExit(f"alias history: {len(history)} moves (expected {moves}), chained={chained}")
    if kinds != ["rollback", "promote"] * ((moves - 4) // 2) or reg.alias_version("champion") != "4":
        raise SystemExit(f"unexpected moves {kinds} or champion {reg.alias_version('champion')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder and print it.")
    parser.add_argument("--baseline", type=Path, help="Folder holding another revision's driftline/ package.")
    args = parser.parse_args()

    exe = str(Path(sys.executable).with_name("driftline"))
    root = Path(tempfile.mkdtemp(prefix="driftline-bench-cli-"))
    try:
        t0 = time.perf_counter()
        config = build_registry(root)
        print(f"registry with 4 versions under {root} (built in {time.perf_counter() - t0:.1f} s)")
        print(f"the CLI reads it through {backend_name(config)}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "MLFLOW_", "PREFECT_"))}
        env["DRIFTLINE_CONFIG"] = str(config)
        cfg = ["--config", str(config)]
        uri = f"sqlite:///{root / 'home' / 'mlflow.db'}"
        peer_code = f"from mlflow import MlflowClient; MlflowClient({uri!r}).get_registered_model({NAME!r})"
        db = root / "home" / "mlflow.db"
        floor_code = (
            f"import sqlite3; sqlite3.connect({str(db)!r}).execute("
            f"'SELECT alias, version FROM registered_model_aliases WHERE name = ?', ({NAME!r},)).fetchall()"
        )
        commands = {
            "--help": [exe, "--help"],
            "models list": [exe, *cfg, "models", "list"],
            "models show 2": [exe, *cfg, "models", "show", "2"],
            "models history": [exe, *cfg, "models", "history"],
            "models rollback": [exe, *cfg, "models", "rollback", "--to", "3", "--reason", "bench"],
            "python -c pass": [sys.executable, "-c", "pass"],
            "peer: import mlflow": [sys.executable, "-c", "import mlflow"],
            "peer: MlflowClient read": [sys.executable, "-c", peer_code],
            "peer: plain sqlite3 read": [sys.executable, "-c", floor_code],
        }
        reset = [exe, *cfg, "models", "promote", "4", "--reason", "bench reset"]
        envs = {kind: env for kind in commands}
        if args.baseline is not None:
            base_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
            for kind in [k for k in commands if k.startswith(("models", "--help"))]:
                commands[f"{kind} [baseline]"] = commands[kind]
                envs[f"{kind} [baseline]"] = base_env
        rollbacks = [k for k in commands if k.startswith("models rollback")]
        for kind, argv in commands.items():  # warm the OS file cache and the .pyc files once, untimed
            run(argv, envs[kind])
            if kind in rollbacks:
                run(reset, env)
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.repeats):
            for kind, argv in commands.items():
                samples[kind].append(run(argv, envs[kind]))
                if kind in rollbacks:
                    run(reset, env)
        check_history(config, 4 + 2 * len(rollbacks) * (args.repeats + 1))

        try:
            load = os.getloadavg()[0]
        except OSError:
            load = float("nan")
        print(f"\n{args.repeats} repeats, whole-process seconds (load average {load:.1f} at the end)")
        print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8}  target")
        for kind, values in samples.items():
            target = HELP_TARGET_S if kind == "--help" else TARGET_S if kind.startswith("models") else None
            med = statistics.median(values)
            verdict = "-" if target is None else f"{'meets' if med <= target else 'MISSES'} {target:.1f} s"
            print(f"{kind:<28} {med:8.3f} {min(values):8.3f} {max(values):8.3f}  {verdict}")
        med = {k: statistics.median(v) for k, v in samples.items()}
        peer = med["peer: MlflowClient read"]
        print()
        if "--help [baseline]" in med:
            print(f"ratio --help           / its baseline         = {med['--help'] / med['--help [baseline]']:.2f}x")
        for kind in ("models list", "models show 2", "models rollback", "models history"):
            print(f"ratio {kind:<16} / peer MlflowClient read = {med[kind] / peer:.2f}x")
            if f"{kind} [baseline]" in med:
                print(f"ratio {kind:<16} / its baseline         = {med[kind] / med[f'{kind} [baseline]']:.2f}x")
        print(f"ratio models list      / peer import mlflow   = {med['models list'] / med['peer: import mlflow']:.2f}x")
        if args.keep:
            print(f"kept {root} (settings: {config})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
