"""Great Expectations plumbing: an offline ephemeral context and one expectation fix.

Imported only inside functions (``import great_expectations`` takes about 4 s), so this module
may import GX at its top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

DOCS_SITE = "driftline"
RESULTS_FOLDER = ".results"
"""Folder of a docs site holding the validation results its index lists (JSON, GX's own format)."""


class ExpectColumnQuantilesNearReference(gxe.ExpectColumnQuantileValuesToBeBetween):
    """GX's ``ExpectColumnQuantileValuesToBeBetween``, returning its success as a Python bool.

    GX 1.24.1 computes the success of that expectation with ``np.all(...)``, a ``numpy.bool``
    that its own validation-results store cannot serialise to JSON, so running the original
    through a ``ValidationDefinition`` raises ``TypeError``. The metric, the bounds and the
    renderers are GX's; only the type of the verdict changes.
    """

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        out = super()._validate(metrics, runtime_configuration, execution_engine)
        out["success"] = bool(out["success"])
        details = out.get("result", {}).get("details", {})
        if "success_details" in details:
            details["success_details"] = [bool(x) for x in details["success_details"]]
        return out


def new_context(docs_dir: Path | None = None) -> Any:
    """An ephemeral GX context with analytics and progress bars off; Data Docs to ``docs_dir``."""
    sites: dict[str, Any] = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(docs_dir).resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    if docs_dir is not None:
        # Validation results kept beside the site, so its index lists every run written there
        # (each call builds a fresh context; an in-memory store would list only its own run).
        defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str((Path(docs_dir) / RESULTS_FOLDER).resolve()),
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)
