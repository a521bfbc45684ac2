"""The outbound IP-range policy on every path that connects out (docs/security.md,
"Outbound requests (SSRF)"): federation requests and their `.well-known` redirects, URL
previews and remote media `Location`s (`WebFetcher`), and push gateways. Each is
checked after DNS resolution, on every redirect, and against DNS rebinding.

The "internal" side is a real listener on 127.0.0.2 that records hits: a request that
slipped past the policy would show there. The allowed side lives on 127.0.0.1 (the
only allowlisted address).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.config.schema import DEFAULT_IP_RANGE_BLOCKLIST
from ranvier.federation.discovery import ServerResolver, WellKnownError
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import (
    ConnectionLimits,
    HttpTransport,
    HttpWellKnownFetcher,
    TransportError,
    build_client_session,
    build_tls_context,
)
from ranvier.services.media.web import (
    BlockedDestinationError,
    WebFetcher,
    WebFetchError,
)
from ranvier.util.clock import FakeClock
from ranvier.workers.push.gateway_client import GatewayClient, GatewayError
from tests.federation.fakes import FakeDns
from tests.federation.tls import LocalCa, make_test_ca

# Everything the defaults block, except the allowed site's address.
POLICY = IpRangeFilter(
    DEFAULT_IP_RANGE_BLOCKLIST, [ipaddress.ip_network("127.0.0.1/32")]
)
ALLOWED = "127.0.0.1"
INTERNAL = "127.0.0.2"


@dataclass
class Site:
    host: str
    port: int
    scheme: str = "http"
    hits: list[str] = field(default_factory=list)
    # path -> Location answered with a 302
    redirects: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"


@asynccontextmanager
async def site(
    host: str, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Site]:
    """Serves `/redirect?to=URL` (302, or `code`) and anything else as 200 "hit"."""
    out = Site(host, 0, "https" if ssl_context else "http")

    async def handle(request: web.Request) -> web.StreamResponse:
        out.hits.append(request.path)
        if request.path in out.redirects:
            return web.Response(
                status=302, headers={"Location": out.redirects[request.path]}
            )
        if request.path.startswith("/redirect"):
            code = int(request.query.get("code", "302"))
            return web.Response(status=code, headers={"Location": request.query["to"]})
        return web.json_response({"m.server": "hit.test:443"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await tcp.start()
    out.port = int(runner.addresses[0][1])
    try:
        yield out
    finally:
        await runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[Site]:
    async with site(INTERNAL) as s:
        yield s


@pytest.fixture
async def allowed() -> AsyncIterator[Site]:
    async with site(ALLOWED) as s:
        yield s


class RebindingDns(FakeDns):
    """Answers `first` for a name's first lookup, `then` afterwards: a check that
    resolves the name before the connection does is fooled, the connector is not."""

    def __init__(self, name: str, first: str, then: str) -> None:
        super().__init__()
        self._name, self._first, self._then = name, first, then
        self.lookups = 0

    async def resolve_host(self, host: str, port: int) -> list[tuple[str, int]]:
        if host != self._name:
            return await super().resolve_host(host, port)
        self.lookups += 1
        return [(self._first if self.lookups == 1 else self._then, port)]


# -- URL previews and remote media Locations (WebFetcher) --------------------------------------
async def test_web_fetcher_checks_names_redirects_and_rebinding(
    allowed: Site, internal: Site
) -> None:
    dns = FakeDns(hosts={"public.test": [ALLOWED], "intranet.test": [INTERNAL]})
    fetcher = WebFetcher(POLICY, dns, user_agent="test")
    try:
        ok = await fetcher.get(allowed.url("/page", "public.test"), max_bytes=1000)
        assert ok.status == 200
        # A name resolving to an internal address.
        with pytest.raises(BlockedDestinationError):
            await fetcher.get(internal.url("/x", "intranet.test"), max_bytes=1000)
        # An IP literal.
        with pytest.raises(BlockedDestinationError):
            await fetcher.get(internal.url("/x"), max_bytes=1000)
        # Redirects to an internal name, literal and IPv4-mapped literal.
        for target in (
            internal.url("/x", "intranet.test"),
            internal.url("/x"),
            f"http://[::ffff:{INTERNAL}]:{internal.port}/x",
        ):
            with pytest.raises(BlockedDestinationError):
                await fetcher.get(
                    allowed.url(f"/redirect?to={target}", "public.test"),
                    max_bytes=1000,
                )
    finally:
        await fetcher.close()
    rebinding = RebindingDns("rebind.test", ALLOWED, INTERNAL)
    fetcher = WebFetcher(POLICY, rebinding, user_agent="test")
    try:
        with pytest.raises(WebFetchError):
            await fetcher.get(internal.url("/x", "rebind.test"), max_bytes=1000)
        assert rebinding.lookups >= 2  # the pre-check passed; the connector refused
    finally:
        await fetcher.close()
    assert internal.hits == []


# -- push gateways -----------------------------------------------------------------------------
async def test_push_gateway_checks_names_and_never_follows_redirects(
    allowed: Site, internal: Site
) -> None:
    dns = FakeDns(hosts={"push.test": [ALLOWED], "intranet.test": [INTERNAL]})
    client = GatewayClient(POLICY, dns)
    try:
        status, _ = await client.post_json(allowed.url("/notify", "push.test"), {})
        assert status == 200
        for url in (internal.url("/notify", "intranet.test"), internal.url("/notify")):
            with pytest.raises(GatewayError):
                await client.post_json(url, {})
        target = internal.url("/notify")
        for code in (302, 307, 308):
            status, _ = await client.post_json(
                allowed.url(f"/redirect?code={code}&to={target}", "push.test"), {}
            )
            assert status == code  # answered as is, not followed
    finally:
        await client.close()
    assert internal.hits == []


# -- federation ----------------------------------------------------------------------------------
@pytest.fixture
def ca(tmp_path: Path) -> LocalCa:
    return make_test_ca(tmp_path / "ca")


def tls_server(ca: LocalCa, name: str) -> ssl.SSLContext:
    cert, key = ca.issue(name)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def test_federation_well_known_redirects_and_requests(ca: LocalCa) -> None:
    async with (
        site(ALLOWED, tls_server(ca, "wk.test")) as wk,
        site(INTERNAL, tls_server(ca, "intranet.test")) as inside,
    ):
        dns = FakeDns(
            hosts={
                "wk.test": [ALLOWED],
                "intranet.test": [INTERNAL],
            },
            port_map={("wk.test", 443): wk.port, ("intranet.test", 443): inside.port},
        )
        session = build_client_session(
            dns,
            POLICY,
            build_tls_context(verify=True, ca_file=ca.ca_file),
            ConnectionLimits(),
        )
        fetcher = HttpWellKnownFetcher(session)
        try:
            # The allowed site's well-known is fetched...
            found = await fetcher.fetch_well_known("wk.test")
            assert found.status == 200
            # ...but once it redirects to an internal host, the hop is refused.
            wk.redirects["/.well-known/matrix/server"] = inside.url(
                "/.well-known/matrix/server", "intranet.test"
            )
            with pytest.raises(WellKnownError):
                await fetcher.fetch_well_known("wk.test")
            # A server name resolving to an internal address is never contacted.
            transport = HttpTransport(
                session, ServerResolver(dns, fetcher, FakeClock()), dns
            )
            with pytest.raises(TransportError):
                await transport.request(
                    f"intranet.test:{inside.port}",
                    "GET",
                    "/_matrix/federation/v1/version",
                    headers={},
                    body=None,
                    request_timeout=5,
                    max_response_bytes=1000,
                )
        finally:
            await session.close()
        assert inside.hits == []
