"""uvicorn's HTTP protocol with TCP_NODELAY set on every connection, whatever made the socket.

asyncio only sets TCP_NODELAY on sockets whose ``proto`` is ``IPPROTO_TCP``. With ``--workers``
above 1, uvicorn binds the listening socket itself with ``proto=0``, so accepted connections keep
Nagle's algorithm on and a small response waits for the client's delayed ACK (about 40 ms on
Linux). Setting the option in ``connection_made`` makes one and several workers behave alike.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

PROTOCOL = "driftline.serve.nodelay:NoDelayHTTPProtocol"
"""The import string to pass as uvicorn's ``http`` option."""


def set_nodelay(sock: Any) -> bool:
    """Turn on TCP_NODELAY for a TCP socket (or uvloop's socket view); whether it was set."""
    if sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's default HTTP protocol (httptools when installed, else h11) plus TCP_NODELAY."""

    def connection_made(self, transport: Any) -> None:
        set_nodelay(transport.get_extra_info("socket"))
        super().connection_made(transport)
