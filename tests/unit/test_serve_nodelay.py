"""TCP_NODELAY is set on accepted connections even when the listening socket was made with proto 0."""

from __future__ import annotations

import socket

from driftline.serve.nodelay import NoDelayHTTPProtocol, set_nodelay


def test_a_connection_accepted_from_a_proto_0_socket_gets_nodelay():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # how uvicorn binds for --workers > 1
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        assert conn.proto == 0 and conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert set_nodelay(conn)
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (conn, client, listener):
            s.close()


def test_non_tcp_sockets_are_left_alone():
    a, b = socket.socketpair()
    try:
        assert not set_nodelay(a) and not set_nodelay(None)
    finally:
        a.close()
        b.close()


def test_the_protocol_is_uvicorns_default_one():
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    assert issubclass(NoDelayHTTPProtocol, AutoHTTPProtocol)
