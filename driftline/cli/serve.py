"""``driftline serve``: the HTTP gateway that scores with the ``champion`` and logs every prediction.

The served version follows the alias (polled every ``--poll-seconds``), so a promote or a
rollback reaches serving without a restart. BLAS/OpenMP pools are pinned to one thread per
process: requests are scored in parallel threads, not by one request's parallel math.
"""

from __future__ import annotations

import os

import typer

from driftline.cli import _common

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def pin_threads() -> None:
    """One BLAS/OpenMP thread: set the variables (read when the libraries load) and limit loaded pools."""
    for key in _THREAD_VARS:
        os.environ.setdefault(key, "1")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command."""

    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each follows the alias)."),
        poll_seconds: float = typer.Option(5.0, "--poll-seconds", min=0.1, help="How often to re-read the alias."),
    ) -> None:
        """Serve POST /predict with the champion; /healthz, /readyz, /metrics, /version, /admin/reload."""
        import logging

        pin_threads()
        s = _common.settings()
        if s.contract is None:
            raise _common.fail("no contract: set 'contract:' in driftline.yaml to serve")
        try:
            import uvicorn
        except ImportError:
            raise _common.fail(
                "serving needs fastapi and uvicorn: pip install fastapi uvicorn prometheus-client"
            ) from None
        from driftline.store import Store

        Store.from_settings(s, _common.contract_for(None, s)).create()  # a bad store fails here, in one line
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("mlflow", "alembic", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from driftline.serve.nodelay import PROTOCOL

        options = {
            "host": host,
            "port": port,
            "timeout_graceful_shutdown": 30,
            "log_level": "warning",
            "http": PROTOCOL,
        }
        typer.echo(
            f"serving model {s.model_name} on http://{host}:{port} (alias champion, polled every {poll_seconds:g} s)"
        )
        if workers > 1:
            if _common.STATE.config is not None:
                os.environ["DRIFTLINE_CONFIG"] = str(_common.STATE.config.resolve())
            os.environ["DRIFTLINE_SERVE_POLL_SECONDS"] = str(poll_seconds)
            uvicorn.run("driftline.serve.app:app_from_env", factory=True, workers=workers, **options)
            return
        from driftline.serve.app import create_app

        uvicorn.run(create_app(s, poll_seconds=poll_seconds), **options)
