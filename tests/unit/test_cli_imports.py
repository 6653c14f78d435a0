"""The CLI imports only what a command needs: ``--help`` loads no heavy library (checked by module, not by clock)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "numpy", "mlflow", "prefect", "great_expectations", "sklearn", "sqlalchemy", "pyarrow")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded once ``code`` ran in a fresh interpreter (reported on stderr)."""
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return [m for m in out.stderr.splitlines()[-1].split(",") if m]


def test_building_the_app_and_its_help_import_no_heavy_library():
    assert _loaded_after("from driftline.cli import build_app\nbuild_app()") == []
    help_code = "from driftline.cli import _common, build_app\n_common.run(build_app(), ['--help'])"
    assert _loaded_after(help_code) == []
    models_help = "from driftline.cli import _common, build_app\n_common.run(build_app(), ['models', '--help'])"
    assert _loaded_after(models_help) == []


def test_cli_defaults_copied_from_the_library_match_it():
    from driftline.cli.validate import DEFAULT_TOLERANCE
    from driftline.validation.suite import DEFAULT_TOLERANCE as LIBRARY_TOLERANCE

    assert DEFAULT_TOLERANCE == LIBRARY_TOLERANCE
