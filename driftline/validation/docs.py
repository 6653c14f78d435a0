"""GX Data Docs that open offline: no CDN, no scripts, named by model and window.

GX 1.x's site builder writes pages that load Bootstrap, jQuery, Font Awesome, Vega and a logo
from CDNs; offline (or behind a proxy) they render unstyled. :func:`self_contained` rewrites
every page of a docs folder: external scripts and stylesheets are dropped, a small stylesheet
covering the Bootstrap classes GX's templates use is inlined, the remote logo points at the
copy GX writes under ``static/images``, and outbound links lose their ``href`` — so a page loads
nothing from the network. Scripts go too (they only enhance the tables and draw Vega charts;
the results are in the HTML). :func:`docs_folder` and :func:`run_name` name a weekly run's docs
by model and window.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']\s*(?:https?:)?//""", re.IGNORECASE)
"""An attribute that would make the browser fetch (or leave for) another host."""

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_EXTERNAL_LINK = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']\s*(?:https?:)?//[^>]*>""", re.IGNORECASE | re.DOTALL)
_REMOTE_IMG = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)["']\s*(?:https?:)?//[^"']*["']""", re.IGNORECASE | re.DOTALL)
_REMOTE_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//[^)]*\)""", re.IGNORECASE)
_OUTBOUND = re.compile(r"""\s(href|action)\s*=\s*["']\s*(?:https?:)?//[^"']*["']""", re.IGNORECASE)
MARKER = "<!-- driftline: self-contained -->"

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:14px;
  line-height:1.45;color:#1d1d1f;background:#f6f7f9;margin:0}
a{color:#1f4fa3;text-decoration:none}
h1,h2,h3,h4,h5,h6,.h6{margin:.4em 0;font-weight:600}.h6{font-size:14px}
.container,.container-fluid{width:100%;padding:0 16px;margin:0 auto}.container{max-width:1200px}
.row{display:flex;flex-wrap:wrap;margin:0 -8px}
[class^=col],[class*=" col"]{padding:0 8px;flex:1 1 100%;max-width:100%}
@media(min-width:768px){.col-md-2{flex:0 0 16.6%;max-width:16.6%}.col-md-10{flex:0 0 83.3%;max-width:83.3%}
  .col-md-3{flex:0 0 25%;max-width:25%}.col-md-9{flex:0 0 75%;max-width:75%}
  .col-md-4{flex:0 0 33.3%;max-width:33.3%}.col-md-8{flex:0 0 66.6%;max-width:66.6%}
  .col-md-6{flex:0 0 50%;max-width:50%}.d-md-block{display:block!important}}
.col-12{flex:0 0 100%;max-width:100%}
.card{background:#fff;border:1px solid #e4e6ea;border-radius:6px;margin-bottom:12px}
.card-header{padding:8px 12px;border-bottom:1px solid #e4e6ea;background:#eef0f4}
.card-body{padding:12px}
.alert{padding:10px 14px;border-radius:6px;margin-bottom:10px;border:1px solid #d6d8db}
.alert-secondary{background:#e2e3e5}
.table{width:100%;border-collapse:collapse;background:#fff;margin-bottom:12px}
.table td,.table th{padding:6px 8px;border-top:1px solid #e4e6ea;vertical-align:top;text-align:left}
.table-sm td,.table-sm th{padding:4px 6px}.table-responsive{overflow-x:auto}
.badge{display:inline-block;padding:1px 6px;border-radius:4px;font-size:12px;background:#eee;margin:1px}
.badge-secondary{background:#6c757d;color:#fff}.badge-info{background:#17a2b8;color:#fff}
.text-success{color:#2e7d32}.text-danger{color:#c62828}.text-muted{color:#666}
.navbar{display:flex;align-items:center;flex-wrap:wrap;padding:8px 16px;background:#fff;
  border-bottom:1px solid #e4e6ea}
.navbar-brand{font-weight:700;margin-right:16px}.nav{display:flex;flex-wrap:wrap;list-style:none;padding:0;margin:0}
.nav-link{display:block;padding:4px 8px}.breadcrumb{display:flex;list-style:none;padding:0;margin:0}
.breadcrumb-item+.breadcrumb-item::before{content:"/";padding:0 6px;color:#888}
.btn{display:inline-block;padding:4px 10px;border:1px solid #ccd;border-radius:4px;background:#fff}
.btn-primary{background:#1f4fa3;color:#fff}
.modal,.fade:not(.show),.tab-pane:not(.active),.collapse:not(.show),.d-none{display:none!important}
.d-flex{display:flex}.float-left{float:left}.sticky,.sticky-top{position:sticky;top:0}
.show-scrollbars{overflow-x:auto}
.fas{font-style:normal}.fa-check-circle::before{content:"✔"}.fa-times::before{content:"✘"}
.fa-exclamation-triangle::before{content:"⚠"}.fa-check::before{content:"✔"}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
img{max-width:100%}
#ge-cta-footer,.ge-walkthrough-modal{display:none}
"""


def _static(page: Path, root: Path) -> str:
    """The relative path from ``page`` to the site's ``static`` folder (GX writes its images there)."""
    return Path(os.path.relpath(root / "static", page.parent)).as_posix()


def make_self_contained(html: str, static: str = "static") -> str:
    """One Data Docs page rewritten to load nothing from the network (see the module docstring)."""
    if MARKER in html:
        return html
    out = _SCRIPT.sub("", html)
    out = _EXTERNAL_LINK.sub("", out)
    out = _REMOTE_IMG.sub(lambda m: f'{m.group(1)}"{static}/images/logo-long.png"', out)
    out = _REMOTE_URL.sub("none", out)
    out = _OUTBOUND.sub("", out)
    style = f"{MARKER}<style>{CSS}</style>"
    head = re.search(r"<head\b[^>]*>", out, re.IGNORECASE)
    return out[: head.end()] + style + out[head.end() :] if head else style + out


_TABLE = r"""(<table\b[^>]*\bid="section-1-content-block-2-{n}-body-table"[^>]*>)\s*</table>"""
_ASSET = re.compile(r"Data asset:\s*([^<]*)<")


def _cell(text: str) -> str:
    return f"<td>{html.escape(text)}</td>"


def index_tables(index: str, root: Path) -> str:
    """Fill the site index's two tables (GX fills them with scripts) from the pages in the folder."""
    rows = []
    for page in sorted((root / "validations").rglob("*.html"), reverse=True):
        rel = page.relative_to(root)
        suite, run, when = rel.parts[1], rel.parts[2], rel.parts[3]
        text = page.read_text(encoding="utf-8")
        asset = _ASSET.search(text)
        status = "failed" if "Failed" in text.split("Status:", 1)[-1][:400] else "succeeded"
        rows.append(
            f"<tr><td><a href='{html.escape(rel.as_posix())}'>{html.escape(when)}</a></td>{_cell(run)}"
            f"{_cell(asset.group(1).strip() if asset else page.stem)}{_cell(suite)}{_cell(status)}</tr>"
        )
    runs = (
        "<thead><tr><th>run time</th><th>run</th><th>data asset</th><th>suite</th><th>status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody>"
    )
    suites = "".join(
        f"<tr><td><a href='{html.escape(p.relative_to(root).as_posix())}'>{html.escape(p.stem)}</a></td></tr>"
        for p in sorted((root / "expectations").rglob("*.html"))
    )
    out = re.sub(_TABLE.format(n=1), lambda m: m.group(1) + runs + "</table>", index, count=1)
    return re.sub(_TABLE.format(n=2), lambda m: m.group(1) + f"<tbody>{suites}</tbody></table>", out, count=1)


def self_contained(docs_dir: Path | str) -> list[Path]:
    """Rewrite every HTML page under ``docs_dir`` with :func:`make_self_contained`; the pages rewritten.

    The site index's tables, which GX fills with scripts, are filled from the pages on disk.
    """
    root = Path(docs_dir)
    done = []
    for page in sorted(root.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if page == root / "index.html" and MARKER not in text:
            text = index_tables(text, root)
        fixed = make_self_contained(text, _static(page, root))
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")
            done.append(page)
    return done


def external_references(html: str) -> list[str]:
    """Every ``src``/``href``/``action``/``url()`` in ``html`` that points at another host (for checks)."""
    attrs = re.findall(r"""(?:src|href|action)\s*=\s*["']\s*((?:https?:)?//[^"']*)""", html, re.IGNORECASE)
    urls = re.findall(r"""url\(\s*["']?\s*((?:https?:)?//[^)'"]*)""", html, re.IGNORECASE)
    return attrs + urls


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "none"


def run_name(model_name: str, window_start: Any) -> str:
    """A weekly run's name in Data Docs: ``<model>-week-<test window start>`` (a path segment, no spaces)."""
    return f"{_slug(model_name)}-week-{str(window_start)[:10]}"


def docs_folder(reports_dir: Path | str, model_name: str) -> Path:
    """Where a model's Data Docs site lives: ``<reports>/<model>/data-docs`` (one site, a run per week)."""
    return Path(reports_dir) / _slug(model_name) / "data-docs"
