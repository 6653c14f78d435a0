"""GX Data Docs: built by the checkpoint's action, opened in headless Chromium, screenshot kept."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.validation import validate_frame

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _batch(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    f = pd.DataFrame(
        {
            "request_id": [f"r{i:03d}" for i in range(n)],
            "user_id": [f"u{i % 5}" for i in range(n)],
            "event_time": pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n), unit="h"),
            "country": rng.choice(["US", "GB", "DE"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 1000, n).astype(float),
            "score_hint": rng.random(n),
            "auto_renew": rng.random(n) < 0.5,
        }
    )
    f.loc[3, "plan"] = "gold"
    return f


def _chromium() -> str:
    path = os.environ.get("DRIFTLINE_CHROMIUM") or shutil.which("chromium")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("CI must provide chromium (see .ci/run)")
        pytest.skip("chromium not installed: apt-get install -y chromium (CI installs it)")
    return path


def test_data_docs_are_written_with_the_validation_page(tiny_contract, tmp_path):
    r = validate_frame(_batch(), tiny_contract, docs_dir=tmp_path / "docs")
    assert not r.success
    assert r.docs_index == tmp_path / "docs" / "index.html" and r.docs_index.exists()
    assert r.docs_page is not None and r.docs_page.is_relative_to(tmp_path / "docs" / "validations")
    page = r.docs_page.read_text()
    assert "expect_column_values_to_be_in_set" in page or "values must belong to this set" in page
    assert "gold" in page
    assert r.to_dict()["docs"] == str(r.docs_index)


def test_data_docs_are_self_contained_and_named_by_model_and_window(tiny_contract, tmp_path):
    from driftline.validation.docs import docs_folder, external_references, run_name

    docs = docs_folder(tmp_path / "reports", "churn weekly")
    assert docs == tmp_path / "reports" / "churn-weekly" / "data-docs"
    name = run_name("churn weekly", "2026-03-09T00:00:00")
    assert name == "churn-weekly-week-2026-03-09"
    results = {
        part: validate_frame(_batch(), tiny_contract, docs_dir=docs, asset_name=f"churn · {part} data", run_name=name)
        for part in ("train", "test")
    }
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) == 4  # index, the suite, one validation page per dataset
    for page in pages:
        html = page.read_text()
        assert external_references(html) == [], page
        assert "<script" not in html and "<style>" in html
    for part, r in results.items():
        page = r.docs_page.read_text()
        assert f"Data asset: churn · {part} data" in page and "Data asset: None" not in page
        assert r.docs_page.parent.parent.name == name and "__none__" not in str(r.docs_page)
    index = (docs / "index.html").read_text()
    for r in results.values():
        assert r.docs_page.relative_to(docs).as_posix() in index  # the index lists both runs, without scripts
    assert index.count("<td>churn-weekly-week-2026-03-09</td>") == 2


@pytest.mark.system
def test_data_docs_open_in_headless_chromium(tiny_contract, tmp_path):
    chromium = _chromium()
    r = validate_frame(_batch(), tiny_contract, docs_dir=tmp_path / "docs")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "validation-data-docs.png"
    shot.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # the page's CDN assets must not reach out
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1280,1600",
            f"--screenshot={shot}",
            r.docs_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 1600)
    assert len(data) > 20_000  # a rendered page, not a blank canvas
