"""Random row corruptions through ingest: every row is stored, quarantined or skipped, and the store agrees."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.contract import parse_contract
from driftline.ingest import ingest_files
from driftline.store import Store
from tests.conftest import TINY_CONTRACT

HEADER = "request_id,user_id,event_time,country,plan,tenure_days,score_hint,auto_renew"
CORRUPTIONS = {
    "good": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,{i % 900},0.5,true",
    "text number": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,lots,0.5,true",
    "huge number": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,{'9' * 401},0.5,true",
    "out of range": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,5000,0.5,true",
    "closed vocabulary": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,gold,1,0.5,true",
    "null": lambda i: f"r{i},u{i},2026-01-05T10:00:00,,free,1,0.5,true",
    "bad boolean": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,1,0.5,maybe",
    "bad time": lambda i: f"r{i},u{i},now,US,free,1,0.5,true",
    "year 9999": lambda i: f"r{i},u{i},9999-01-05T10:00:00,US,free,1,0.5,true",
    "missing id": lambda i: f",u{i},2026-01-05T10:00:00,US,free,1,0.5,true",
    "broken line": lambda i: f"r{i},u{i},2026-01-05T10:00:00,US,free,1,0.5,true,EXTRA",
    "copy of row 0": lambda i: "r0,u0,2026-01-05T10:00:00,US,free,0,0.5,true",
    "conflict with row 0": lambda i: "r0,u0,2026-01-05T10:00:00,GB,free,0,0.5,true",
    "NA country": lambda i: f"r{i},u{i},2026-01-05T10:00:00,NA,free,1,0.5,true",
    "four faults": lambda i: f"r{i},u{i},2026-01-05T10:00:00,,gold,5000,0.5,maybe",
}
FAULTS = {"four faults": 4}
"""Corruptions with several faults in one row (each counts under every key in ``by_reason``)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=25), twice=st.booleans())
def test_counts_reconcile_with_the_store(kinds: list[str], twice: bool) -> None:
    contract = parse_contract(TINY_CONTRACT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.csv"
        lines = [CORRUPTIONS["good"](0), *(CORRUPTIONS[k](i + 1) for i, k in enumerate(kinds))]
        path.write_text("\n".join([HEADER, *lines]) + "\n")
        store = Store(f"sqlite:///{tmp}/store.db", contract).create()
        for attempt in range(2 if twice else 1):
            report = ingest_files([path], contract, store)
            assert report.rows_in == len(lines)
            assert report.rows_in == report.stored + report.quarantined + report.duplicates_skipped
            # by_reason counts every fault; by_first_reason each quarantined row once, by its stored reason.
            assert sum(report.by_first_reason.values()) == report.quarantined
            assert all(report.by_reason[k] >= n for k, n in report.by_first_reason.items())
            extra = sum(FAULTS[k] - 1 for k in kinds if k in FAULTS)
            assert sum(report.by_reason.values()) == report.quarantined + extra
            if attempt == 0:
                first = report
            else:  # a re-ingest stores nothing new and records no quarantine twice
                assert report.stored == 0 and report.quarantine_already_recorded == report.quarantined
        assert store.count("predictions") == first.stored
        assert store.count("quarantine") == first.quarantined
        stored = store.read_predictions()
        assert stored["request_id"].is_unique
        assert set(pd.Series(stored["country"]).dropna()) <= {"US", "GB", "NA"}
        store.engine.dispose()
