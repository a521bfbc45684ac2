"""Listener shutdown (`app/server.py::close_runner`): when it returns, every accepted
connection is closed at the TCP level, TLS ones included, even if the peer never
answers our close_notify (asyncio would otherwise keep the socket for 30 s, and a test
loop ending meanwhile reports an unclosed transport)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.app.server import close_runner
from tests.federation.tls import make_test_ca

HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _start(ssl_context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = make_test_ca(tmp_path)
    cert, key = ca.issue(HOST)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert), str(key))
    client = ssl.create_default_context(cafile=str(ca.ca_file))
    return server, client


def _read_response(sock: socket.socket | ssl.SSLSocket) -> None:
    data = b""
    while b"hello" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the response"
        data += chunk


def _tcp_closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server closed the TCP connection (EOF or reset), reading raw
    bytes (a close_notify alert is just bytes here: nothing answers it)."""
    raw = socket.socket(fileno=os.dup(sock.fileno()))
    raw.settimeout(within)
    try:
        while raw.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        raw.close()
    return True


@pytest.fixture
async def silent_tls_client(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> AsyncIterator[tuple[web.AppRunner, ssl.SSLSocket]]:
    """A server, and a keep-alive TLS client that made one request and then never
    reads again (so never answers close_notify)."""
    server_ctx, client_ctx = tls_contexts
    runner, port = await _start(server_ctx)

    def connect() -> ssl.SSLSocket:
        tls = client_ctx.wrap_socket(
            socket.create_connection((HOST, port)), server_hostname=HOST
        )
        tls.sendall(REQUEST)
        _read_response(tls)
        return tls

    tls = await asyncio.to_thread(connect)
    try:
        yield runner, tls
    finally:
        tls.close()
        await runner.cleanup()


async def test_tls_peer_that_never_answers_close_notify_is_cut_off(
    silent_tls_client: tuple[web.AppRunner, ssl.SSLSocket],
) -> None:
    runner, tls = silent_tls_client
    started = time.monotonic()
    await close_runner(runner, close_wait=0.3)
    assert time.monotonic() - started < 5.0
    # Already closed when close_runner returned: no waiting here.
    assert await asyncio.to_thread(_tcp_closed_by_server, tls, 1.0)


async def test_plain_connections_close_without_waiting() -> None:
    runner, port = await _start(None)

    def connect() -> socket.socket:
        sock = socket.create_connection((HOST, port))
        sock.sendall(REQUEST)
        _read_response(sock)
        return sock

    sock = await asyncio.to_thread(connect)
    try:
        started = time.monotonic()
        await close_runner(runner, close_wait=10.0)
        # Nothing needed the close_wait: the idle keep-alive connection closed at once.
        assert time.monotonic() - started < 3.0
        assert await asyncio.to_thread(_tcp_closed_by_server, sock, 1.0)
    finally:
        sock.close()
