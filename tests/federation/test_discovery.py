"""Server discovery: each step of the spec with fake DNS; the real well-known fetcher
against a TLS server on loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.federation.discovery import (
    ResolvedServer,
    ServerResolver,
    WellKnownError,
    WellKnownResponse,
    cache_period_ms,
)
from ranvier.federation.dns import SrvRecord
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import (
    ConnectionLimits,
    HttpWellKnownFetcher,
    build_client_session,
    build_tls_context,
)
from ranvier.util.clock import FakeClock
from tests.federation.fakes import FakeDns
from tests.federation.tls import LocalCa, make_test_ca

HOUR_MS = 3600 * 1000


@dataclass
class FakeWellKnown:
    answers: dict[str, WellKnownResponse | Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def fetch_well_known(self, hostname: str) -> WellKnownResponse:
        self.calls.append(hostname)
        answer = self.answers.get(hostname, WellKnownError("connection refused"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def wk(
    body: bytes, headers: dict[str, str] | None = None, status: int = 200
) -> WellKnownResponse:
    return WellKnownResponse(status, body, headers or {})


def make(
    dns: FakeDns | None = None, well_known: FakeWellKnown | None = None
) -> tuple[ServerResolver, FakeDns, FakeWellKnown, FakeClock]:
    dns = dns or FakeDns()
    well_known = well_known or FakeWellKnown()
    clock = FakeClock()
    return ServerResolver(dns, well_known, clock), dns, well_known, clock


async def test_ip_literals_and_explicit_port_skip_lookups() -> None:
    resolver, dns, well_known, _ = make()
    assert await resolver.resolve("1.2.3.4") == [
        ResolvedServer("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")
    ]
    assert await resolver.resolve("[2001:db8::1]:8000") == [
        ResolvedServer("2001:db8::1", 8000, "[2001:db8::1]:8000", "2001:db8::1")
    ]
    assert await resolver.resolve("hs.example:1234") == [
        ResolvedServer("hs.example", 1234, "hs.example:1234", "hs.example")
    ]
    assert well_known.calls == []
    assert dns.srv_queries == []


async def test_well_known_delegation_variants() -> None:
    well_known = FakeWellKnown(
        {
            "ip.example": wk(b'{"m.server": "5.6.7.8"}'),
            "port.example": wk(b'{"m.server": "matrix.port.example:443"}'),
            "srv.example": wk(b'{"m.server": "matrix.srv.example"}'),
            "plain.example": wk(b'{"m.server": "matrix.plain.example"}'),
        }
    )
    dns = FakeDns(
        srv={
            "_matrix-fed._tcp.matrix.srv.example": [
                SrvRecord(10, 0, 8009, "backup.srv.example"),
                SrvRecord(5, 0, 8008, "primary.srv.example"),
            ]
        }
    )
    resolver, _, _, _ = make(dns, well_known)
    assert await resolver.resolve("ip.example") == [
        ResolvedServer("5.6.7.8", 8448, "5.6.7.8", "5.6.7.8")
    ]
    assert await resolver.resolve("port.example") == [
        ResolvedServer(
            "matrix.port.example", 443, "matrix.port.example:443", "matrix.port.example"
        )
    ]
    # SRV targets are where to connect; Host and certificate stay the delegated name.
    assert await resolver.resolve("srv.example") == [
        ResolvedServer(
            "primary.srv.example", 8008, "matrix.srv.example", "matrix.srv.example"
        ),
        ResolvedServer(
            "backup.srv.example", 8009, "matrix.srv.example", "matrix.srv.example"
        ),
    ]
    assert await resolver.resolve("plain.example") == [
        ResolvedServer(
            "matrix.plain.example", 8448, "matrix.plain.example", "matrix.plain.example"
        )
    ]
    # Delegation with a port never consults SRV.
    assert not any("port.example" in q for q in dns.srv_queries)


async def test_srv_fallbacks_without_well_known() -> None:
    dns = FakeDns(
        srv={
            "_matrix-fed._tcp.fed.example": [SrvRecord(0, 0, 1111, "t.fed.example")],
            "_matrix._tcp.legacy.example": [SrvRecord(0, 0, 2222, "t.legacy.example.")],
            "_matrix-fed._tcp.dot.example": [SrvRecord(0, 0, 0, ".")],
        },
        failing_srv={"_matrix-fed._tcp.legacy.example"},
    )
    resolver, _, _, _ = make(dns)
    assert await resolver.resolve("fed.example") == [
        ResolvedServer("t.fed.example", 1111, "fed.example", "fed.example")
    ]
    # A failed _matrix-fed lookup falls through to the deprecated _matrix record.
    legacy = await resolver.resolve("legacy.example")
    assert legacy[0].port == 2222
    assert legacy[0].host_header == "legacy.example"
    # "." means "no service": fall back to port 8448.
    assert await resolver.resolve("dot.example") == [
        ResolvedServer("dot.example", 8448, "dot.example", "dot.example")
    ]


@pytest.mark.parametrize(
    "answer",
    [
        wk(b"not json"),
        wk(b'["m.server"]'),
        wk(b'{"m.server": 5}'),
        wk(b'{"m.server": "bad name!"}'),
        wk(b'{"m.server": "x.example"}', status=404),
        WellKnownError("tls failure"),
    ],
)
async def test_bad_well_known_is_cached_for_an_hour(
    answer: WellKnownResponse | Exception,
) -> None:
    resolver, _, well_known, clock = make(
        well_known=FakeWellKnown({"h.example": answer})
    )
    expected = [ResolvedServer("h.example", 8448, "h.example", "h.example")]
    assert await resolver.resolve("h.example") == expected
    clock.advance(59 * 60)
    assert await resolver.resolve("h.example") == expected
    assert well_known.calls == ["h.example"]
    clock.advance(2 * 60)
    await resolver.resolve("h.example")
    assert well_known.calls == ["h.example", "h.example"]


async def test_well_known_cache_honours_headers() -> None:
    well_known = FakeWellKnown(
        {
            "h.example": wk(
                b'{"m.server": "d.example:1"}', {"cache-control": "max-age=7200"}
            )
        }
    )
    resolver, _, _, clock = make(well_known=well_known)
    await resolver.resolve("h.example")
    clock.advance(7100)
    await resolver.resolve("h.example")
    assert len(well_known.calls) == 1
    clock.advance(200)
    await resolver.resolve("h.example")
    assert len(well_known.calls) == 2


def test_cache_period_rules() -> None:
    now = 1_700_000_000_000
    assert cache_period_ms({}, now) == 24 * HOUR_MS
    assert cache_period_ms({"cache-control": "public, max-age=600"}, now) == 600_000
    # Clamped to [5 min, 48 h].
    assert cache_period_ms({"cache-control": "max-age=1"}, now) == 5 * 60 * 1000
    assert cache_period_ms({"cache-control": "max-age=9999999"}, now) == 48 * HOUR_MS
    assert cache_period_ms({"cache-control": "no-store"}, now) == 5 * 60 * 1000
    expires = "Tue, 14 Nov 2023 23:13:20 GMT"  # now + 1 h
    assert cache_period_ms({"expires": expires}, now) == HOUR_MS
    assert cache_period_ms({"expires": "garbage"}, now) == 24 * HOUR_MS


async def test_concurrent_resolutions_share_one_well_known_fetch() -> None:
    import asyncio

    resolver, _, well_known, _ = make(
        well_known=FakeWellKnown({"h.example": wk(b'{"m.server": "d.example:1"}')})
    )
    results = await asyncio.gather(*(resolver.resolve("h.example") for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert well_known.calls == ["h.example"]


# -- the real fetcher over TLS on loopback ---------------------------------------------


@pytest.fixture
def test_ca(tmp_path: Path) -> LocalCa:
    return make_test_ca(tmp_path / "ca")


@pytest.fixture
async def tls_site(test_ca: LocalCa) -> AsyncIterator[tuple[int, list[str]]]:
    """HTTPS on 127.0.0.1 with a certificate for wk.test; records request paths."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path == "/.well-known/matrix/server":
            raise web.HTTPFound("/moved")
        if request.path == "/moved":
            return web.json_response(
                {"m.server": "fed.wk.test:8443"},
                headers={"Cache-Control": "max-age=900"},
            )
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path == "/big":
            return web.Response(body=b"x" * (60 * 1024))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    cert, key = test_ca.issue("wk.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        yield int(runner.addresses[0][1]), seen
    finally:
        await runner.cleanup()


def loopback_filter() -> IpRangeFilter:
    import ipaddress

    return IpRangeFilter(
        [ipaddress.ip_network("127.0.0.0/8")], [ipaddress.ip_network("127.0.0.1/32")]
    )


async def test_real_well_known_fetch_over_tls(
    test_ca: LocalCa, tls_site: tuple[int, list[str]]
) -> None:
    port, seen = tls_site
    dns = FakeDns(hosts={"wk.test": ["127.0.0.1"]}, port_map={("wk.test", 443): port})
    session = build_client_session(
        dns,
        loopback_filter(),
        build_tls_context(verify=True, ca_file=test_ca.ca_file),
        ConnectionLimits(),
    )
    try:
        fetcher = HttpWellKnownFetcher(session)
        resolver = ServerResolver(dns, fetcher, FakeClock())
        # Redirect followed; delegated name with port (step 3.2).
        assert await resolver.resolve("wk.test") == [
            ResolvedServer("fed.wk.test", 8443, "fed.wk.test:8443", "fed.wk.test")
        ]
        assert seen == ["/.well-known/matrix/server", "/moved"]
    finally:
        await session.close()


async def test_real_fetcher_refuses_untrusted_cert_and_blocked_address(
    tmp_path: Path, tls_site: tuple[int, list[str]]
) -> None:
    port, seen = tls_site
    dns = FakeDns(hosts={"wk.test": ["127.0.0.1"]}, port_map={("wk.test", 443): port})
    other_ca = make_test_ca(tmp_path / "other-ca")
    import ipaddress

    for ip_filter, ca in (
        (loopback_filter(), other_ca.ca_file),  # certificate from an unknown CA
        (IpRangeFilter([ipaddress.ip_network("127.0.0.0/8")]), None),  # blocked
    ):
        session = build_client_session(
            dns,
            ip_filter,
            build_tls_context(verify=True, ca_file=ca),
            ConnectionLimits(),
        )
        try:
            with pytest.raises(WellKnownError):
                await HttpWellKnownFetcher(session).fetch_well_known("wk.test")
        finally:
            await session.close()
    assert seen == []
