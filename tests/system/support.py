"""Helpers for system tests: free loopback ports, servers started as child processes and always
stopped (with everything they spawned), bounded waits, and binaries that must exist in CI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, env_var: str | None = None) -> str:
    """Path of ``$env_var``, else of ``name`` in this virtualenv, else on PATH.

    Skips the test when it is missing on a developer machine; fails it in CI (``$CI`` set).
    """
    path = os.environ.get(env_var) if env_var else None
    path = path or (str(BIN / name) if (BIN / name).exists() else shutil.which(name))
    if path:
        return path
    message = f"{name} not found on PATH" + (f" (or ${env_var})" if env_var else "")
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must provide it (see .ci/run)")
    pytest.skip(message)
    raise AssertionError("unreachable")


def require_module(name: str) -> Any:
    """Import ``name``; skip when it is not installed locally, fail when it is missing in CI."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name} is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must provide it")
        pytest.skip(message)
        raise


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without driftline/Prefect/MLflow settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DRIFTLINE_", "PREFECT_", "MLFLOW_")) or k in ("DRIFTLINE_CHROMIUM",)
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "DO_NOT_TRACK": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, read from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process started (directly or not) by ``pid``."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def stop_tree(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop ``proc`` and everything it spawned: SIGINT/SIGTERM, then SIGKILL after ``timeout``."""
    pids = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # servers and workers shut down cleanly on Ctrl-C
        try:
            proc.wait(timeout / 2)
        except subprocess.TimeoutExpired:
            _signal([proc.pid], signal.SIGTERM)
    pids = sorted(set(pids) | set(descendants(proc.pid)))
    _signal([p for p in pids if _alive(p)], signal.SIGTERM)
    deadline = time.monotonic() + timeout / 2
    while time.monotonic() < deadline and (proc.poll() is None or any(_alive(p) for p in pids)):
        time.sleep(0.2)
    _signal([p for p in pids if _alive(p)], signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for assertion messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@contextmanager
def service(cmd: list[str], *, log: Path, env: Mapping[str, str], cwd: Path | None = None) -> Iterator[Any]:
    """Run ``cmd`` in the background (stdout+stderr to ``log``); always stop it and its children."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd
        )
        try:
            yield proc
        finally:
            stop_tree(proc)


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, proc: Any = None, log: Path | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and the log) on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{log_tail(log) if log else ''}")
        try:
            value = check()
        except Exception as e:  # not ready yet
            last, value = e, None
        if value:
            return value
        time.sleep(0.5)
    detail = f" (last error: {last!r})" if last else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}\n{log_tail(log) if log else ''}")


def http_ok(url: str) -> bool:
    """True when GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def run_cli(cmd: list[str], *, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 180) -> Any:
    """Run a command to completion (bounded); returns CompletedProcess with text output."""
    try:
        return subprocess.run(
            cmd, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout:.0f} s\n{e.stdout!r}\n{e.stderr!r}")
