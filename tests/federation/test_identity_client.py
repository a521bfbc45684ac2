"""The identity-server HTTP client: the outbound IP policy before connecting and on
redirects, HTTPS only, bounded time and size, and how failures are told apart."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.federation.identity import (
    IdentityServerBlockedError,
    IdentityServerClient,
    IdentityServerRefusedError,
    IdentityServerUnavailableError,
)
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import build_tls_context
from tests.federation.fakes import FakeDns
from tests.federation.tls import make_test_ca

BLOCK_ALL = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]


@asynccontextmanager
async def https_app(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"valid": True})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"0," * 600_000 + b"0]")

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="<html>")

    async def broken(_: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_UNKNOWN", "error": "boom"}, status=500)

    async def to_blocked(_: web.Request) -> web.Response:
        raise web.HTTPFound("https://10.1.2.3/ok")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.url))

    app = web.Application()
    for path, handler in [
        ("/ok", ok),
        ("/slow", slow),
        ("/big", big),
        ("/text", text),
        ("/broken", broken),
        ("/to-blocked", to_blocked),
        ("/loop", loop),
    ]:
        app.router.add_get(path, handler)
    ca = make_test_ca(tmp_path / "ca")
    cert, key = ca.issue("127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        yield int(runner.addresses[0][1]), ca.ca_file
    finally:
        await runner.cleanup()


def client(
    ca_file: Path, dns: FakeDns | None = None, *, allow_loopback: bool = True
) -> IdentityServerClient:
    allow = [ipaddress.ip_network("127.0.0.1/32")] if allow_loopback else []
    return IdentityServerClient(
        IpRangeFilter(BLOCK_ALL, allow),
        dns or FakeDns(),
        build_tls_context(verify=True, ca_file=ca_file),
        timeout=1.0,
    )


async def test_answers_and_failures(tmp_path: Path) -> None:
    async with https_app(tmp_path) as (port, ca_file):
        ids = client(ca_file)
        base = f"https://127.0.0.1:{port}"
        assert await ids.get_json(base + "/ok", args={"public_key": "k"}) == {
            "valid": True
        }
        with pytest.raises(IdentityServerUnavailableError, match="no answer"):
            await ids.get_json(base + "/slow")
        with pytest.raises(IdentityServerUnavailableError, match="too large"):
            await ids.get_json(base + "/big")
        with pytest.raises(IdentityServerUnavailableError, match="not JSON"):
            await ids.get_json(base + "/text")
        with pytest.raises(IdentityServerRefusedError) as refused:
            await ids.get_json(base + "/broken")
        assert (refused.value.status, refused.value.errcode) == (500, "M_UNKNOWN")
        with pytest.raises(IdentityServerBlockedError, match=r"10\.1\.2\.3"):
            await ids.get_json(base + "/to-blocked")
        with pytest.raises(IdentityServerUnavailableError, match="redirects"):
            await ids.get_json(base + "/loop")
        # Nothing listens there.
        with pytest.raises(IdentityServerUnavailableError):
            await ids.get_json("https://127.0.0.1:1/ok")


async def test_destinations_are_checked_before_connecting(tmp_path: Path) -> None:
    async with https_app(tmp_path) as (port, ca_file):
        dns = FakeDns(hosts={"inside.example": ["10.0.0.7"], "ids.example": []})
        ids = client(ca_file, dns)
        with pytest.raises(IdentityServerBlockedError, match="only https"):
            await ids.get_json(f"http://127.0.0.1:{port}/ok")
        with pytest.raises(IdentityServerBlockedError, match="resolves only"):
            await ids.get_json("https://inside.example/ok")
        with pytest.raises(IdentityServerUnavailableError, match="cannot resolve"):
            await ids.get_json("https://ids.example/ok")
        with pytest.raises(IdentityServerBlockedError, match="not a server name"):
            ids.base_url("bad name/../")
        assert ids.base_url(f"127.0.0.1:{port}") == f"https://127.0.0.1:{port}"
        with pytest.raises(IdentityServerBlockedError, match="blocked"):
            await client(ca_file, allow_loopback=False).post_json(
                f"https://127.0.0.1:{port}/ok", {}
            )
