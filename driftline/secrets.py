"""Secrets never printed: URLs with their password (and query tokens) masked for messages."""

from __future__ import annotations

import re
import urllib.parse

_SENSITIVE_QUERY = re.compile(r"(?i)(password|passwd|pwd|token|secret|key|sig|signature|credential)")


def mask_url(url: object) -> str:
    """``scheme://user:***@host/path``: the password and sensitive query values replaced by ``***``.

    Works for SQLAlchemy URLs (``postgresql+psycopg://u:p@h/db``) and HTTP(S) tracking URIs alike;
    anything that does not parse as a URL is returned with ``user:pass@`` patterns masked.
    """
    text = str(url)
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return _mask_userinfo(text)
    masked = text
    if "@" in parts.netloc:
        creds, host = parts.netloc.rsplit("@", 1)
        if ":" in creds:
            masked = masked.replace(f"{parts.netloc}", f"{creds.split(':', 1)[0]}:***@{host}", 1)
    if parts.query:
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if v and _SENSITIVE_QUERY.search(k):
                masked = re.sub(rf"([?&]){re.escape(k)}=[^&#]*", rf"\g<1>{k}=***", masked)
    return masked


def _mask_userinfo(text: str) -> str:
    return re.sub(r"//([^/:@\s]*):[^@/\s]*@", r"//\1:***@", text)


def mask_text(text: str, *urls: str | None) -> str:
    """``text`` with every given URL replaced by its masked form, and any ``//user:pass@`` masked."""
    for url in urls:
        if url:
            text = text.replace(str(url), mask_url(url))
    return _mask_userinfo(text)
