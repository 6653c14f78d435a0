"""The ``driftline`` command line.

Each area registers its commands from its own module so that ``driftline --help`` stays
fast: heavy libraries (MLflow, GX, Prefect, scikit-learn) are imported inside commands.
Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from driftline.cli import _common


def build_app() -> typer.Typer:
    """Assemble the Typer app from the per-area command modules."""
    app = typer.Typer(
        name="driftline",
        help=(
            "Keep a tabular classifier honest after it ships: refresh test sets from production, "
            "validate features and training-serving skew, measure drift, retrain on triggers and "
            "version every model in MLflow so rollback is one alias move."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    app.callback()(_common.root_callback)
    from driftline.cli import data as data_cmds

    data_cmds.register(app)
    for name in ("drift", "validate", "run", "models", "rollout", "serve", "quickstart", "replay", "review"):
        try:
            module = __import__(f"driftline.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"driftline.cli.{name}":
                raise
            continue
        module.register(app)
    return app


def main() -> None:
    """Console-script entry point."""
    app = build_app()
    sys.exit(_common.run(app))
