"""Moving bytes to another server: the `FederationTransport` protocol and two transports.

* `HttpTransport` - the real one: server discovery, HTTPS with certificate verification
  (system trust store plus an optional extra CA file), pooled keep-alive connections
  per destination, and the outbound IP-range policy enforced on the address actually
  connected to (after DNS, so DNS rebinding cannot bypass it).
* `InProcessTransport` - for tests: routes server name X straight to the plain-HTTP
  loopback listener of the Ranvier instance named X, so several servers federate in
  one process without TLS or DNS.

Transports know nothing of signing or JSON: `FederationClient` builds the request
(`Authorization` included) and interprets the response.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ranvier.core.ids import InvalidIdentifierError
from ranvier.federation.discovery import (
    WELL_KNOWN_MAX_BYTES,
    WELL_KNOWN_MAX_REDIRECTS,
    ResolvedServer,
    ServerResolver,
    WellKnownError,
    WellKnownResponse,
)
from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter, parse_ip

logger = logging.getLogger(__name__)

_NUMERIC_FLAGS: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_CHUNK: Final = 64 * 1024
_USER_AGENT: Final = "Ranvier (federation)"


class TransportError(Exception):
    """No usable HTTP response: DNS, connection, TLS, timeout, refused address, or a
    body over the size limit."""


@dataclass(frozen=True, slots=True)
class TransportResponse:
    status: int
    body: bytes
    content_type: str | None = None
    # Response headers with lower-cased names (media needs the multipart boundary,
    # `Content-Disposition` and `Location`); None from transports that do not keep them.
    headers: Mapping[str, str] | None = None


def response_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


class FederationTransport(Protocol):
    async def request(
        self,
        destination: str,
        method: str,
        uri: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        request_timeout: float,
        max_response_bytes: int,
    ) -> TransportResponse:
        """Send one request to the server named `destination`; `uri` is the already
        percent-encoded path and query, sent exactly as signed. Raise
        `TransportError` when no complete response arrives."""
        ...

    async def close(self) -> None: ...


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise TransportError(
            f"response of {response.content_length} bytes is too large"
        )
    buf = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise TransportError(f"response exceeds {limit} bytes")
    return bytes(buf)


def build_tls_context(*, verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """Client TLS: the system trust store, plus `ca_file` when given. Verification is
    off only when the operator set `federation.verify_tls: false`."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class BlocklistingResolver(AbstractResolver):
    """aiohttp resolver over our `DnsResolver` that drops addresses the policy refuses."""

    def __init__(self, dns: DnsResolver, ip_filter: IpRangeFilter) -> None:
        self._dns = dns
        self._filter = ip_filter

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._dns.resolve_host(host, port)
        if not addresses:
            raise OSError(f"cannot resolve {host}")
        allowed = [(ip, p) for ip, p in addresses if self._filter.is_allowed(ip)]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses we may not connect to")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=p,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=_NUMERIC_FLAGS,
            )
            for ip, p in allowed
        ]

    async def close(self) -> None:
        """The DNS resolver belongs to the transport, which closes it."""


def guarded_socket_factory(ip_filter: IpRangeFilter) -> SocketFactoryType:
    """The last check before `connect()`: IP literals in URLs (and redirects to them)
    never pass through the resolver, but every connection passes through here."""

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _canon, sockaddr = addr_info
        if not ip_filter.is_allowed(str(sockaddr[0])):
            raise OSError(f"connecting to {sockaddr[0]} is not allowed")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def guarded_connector(
    dns: DnsResolver,
    ip_filter: IpRangeFilter,
    *,
    tls: ssl.SSLContext | bool = True,
    limit: int = 100,
    limit_per_host: int = 0,
    keepalive_timeout: float = 15.0,
) -> aiohttp.TCPConnector:
    """The one way Ranvier builds an outbound connector (federation, well-known, URL
    previews, remote media `Location`s, push gateways): names resolved through our
    resolver with refused addresses dropped, and every socket checked right before
    `connect()` (IP literals, redirect targets and re-resolved names included). Its
    sessions must not follow redirects on their own unless each hop may reach any
    allowed address (they still pass through this connector), and must not use
    proxies from the environment (`trust_env` stays False)."""
    return aiohttp.TCPConnector(
        resolver=BlocklistingResolver(dns, ip_filter),
        socket_factory=guarded_socket_factory(ip_filter),
        ssl=tls,
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive_timeout,
        # Our DnsResolver decides how long answers live.
        use_dns_cache=False,
    )


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    # Connections per destination address; total across all destinations.
    per_host: int = 4
    total: int = 200
    connect_timeout: float = 15.0
    keepalive_timeout: float = 60.0


def build_client_session(
    dns: DnsResolver,
    ip_filter: IpRangeFilter,
    tls: ssl.SSLContext,
    limits: ConnectionLimits,
) -> aiohttp.ClientSession:
    connector = guarded_connector(
        dns,
        ip_filter,
        tls=tls,
        limit=limits.total,
        limit_per_host=limits.per_host,
        keepalive_timeout=limits.keepalive_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(sock_connect=limits.connect_timeout),
        headers={"User-Agent": _USER_AGENT},
        auto_decompress=True,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _host_for_url(host: str) -> str:
    ip = parse_ip(host)
    return f"[{ip}]" if ip is not None and ip.version == 6 else host


class HttpWellKnownFetcher:
    """`WellKnownFetcher` over the federation session (so the IP policy applies to the
    well-known host and to every redirect target)."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self._session = session
        self._timeout = timeout

    async def fetch_well_known(self, hostname: str) -> WellKnownResponse:
        url = URL.build(
            scheme="https", host=hostname, path="/.well-known/matrix/server"
        )
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(url)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            raise WellKnownError(f"{type(e).__name__}: {e}") from None

    async def _follow(self, url: URL) -> WellKnownResponse:
        for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
            async with self._session.get(url, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in (301, 302, 303, 307, 308) and location:
                    url = url.join(URL(location))
                    continue
                try:
                    body = await read_capped(resp, WELL_KNOWN_MAX_BYTES)
                except TransportError as e:
                    raise WellKnownError(str(e)) from None
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return WellKnownResponse(resp.status, body, headers)
        raise WellKnownError("too many redirects")


class HttpTransport:
    """The production transport: discovery, TLS, connection pool, IP policy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        resolver: ServerResolver,
        dns: DnsResolver,
    ) -> None:
        self._session = session
        self._resolver = resolver
        self._dns = dns

    async def request(
        self,
        destination: str,
        method: str,
        uri: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        request_timeout: float,
        max_response_bytes: int,
    ) -> TransportResponse:
        try:
            async with asyncio.timeout(request_timeout):
                candidates = await self._resolver.resolve(destination)
                return await self._try_candidates(
                    candidates, method, uri, headers, body, max_response_bytes
                )
        except InvalidIdentifierError as e:
            raise TransportError(str(e)) from None
        except TimeoutError:
            raise TransportError(f"timed out after {request_timeout}s") from None

    async def _try_candidates(
        self,
        candidates: list[ResolvedServer],
        method: str,
        uri: str,
        headers: Mapping[str, str],
        body: bytes | None,
        max_response_bytes: int,
    ) -> TransportResponse:
        last_error: Exception | None = None
        for target in candidates:
            try:
                return await self._send_to(
                    target, method, uri, headers, body, max_response_bytes
                )
            except aiohttp.ClientConnectorError as e:
                # Only failing to connect moves on to the next candidate: a request
                # that may have reached the server is never sent twice.
                last_error = e
            except (aiohttp.ClientError, OSError) as e:
                last_error = e
                break
        raise TransportError(f"{type(last_error).__name__}: {last_error}")

    async def _send_to(
        self,
        target: ResolvedServer,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        body: bytes | None,
        max_response_bytes: int,
    ) -> TransportResponse:
        base = URL.build(
            scheme="https", host=_host_for_url(target.connect_host), port=target.port
        )
        url = URL(str(base) + uri, encoded=True)
        all_headers = {**headers, "Host": target.host_header}
        async with self._session.request(
            method,
            url,
            headers=all_headers,
            data=body,
            server_hostname=target.tls_server_name,
            allow_redirects=False,
        ) as resp:
            data = await read_capped(resp, max_response_bytes)
            return TransportResponse(
                resp.status, data, resp.content_type, response_headers(resp)
            )

    async def close(self) -> None:
        await self._session.close()
        await self._dns.close()


class InProcessTransport:
    """Test transport: server name -> `http://127.0.0.1:<port>` of that instance."""

    def __init__(self) -> None:
        self._routes: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None

    def register(self, server_name: str, base_url: str) -> None:
        self._routes[server_name] = base_url.rstrip("/")

    def unregister(self, server_name: str) -> None:
        self._routes.pop(server_name, None)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def request(
        self,
        destination: str,
        method: str,
        uri: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        request_timeout: float,
        max_response_bytes: int,
    ) -> TransportResponse:
        base = self._routes.get(destination)
        if base is None:
            raise TransportError(f"no route to {destination}")
        url = URL(base + uri, encoded=True)
        try:
            async with (
                asyncio.timeout(request_timeout),
                self._get_session().request(
                    method,
                    url,
                    headers={**headers, "Host": destination},
                    data=body,
                    allow_redirects=False,
                ) as resp,
            ):
                data = await read_capped(resp, max_response_bytes)
                return TransportResponse(
                    resp.status, data, resp.content_type, response_headers(resp)
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise TransportError(f"{type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
