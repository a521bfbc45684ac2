"""Server discovery: where to connect for a server name (spec: Server-Server API >
Server discovery > Resolving server names).

Steps, for `hostname[:port]`:

1. IP literal: that address, the given port or 8448; `Host` is the server name.
2. Explicit port: resolve the hostname; `Host` is `hostname:port`.
3. `GET https://<hostname>/.well-known/matrix/server` → `m.server` =
   `<delegated_hostname>[:<delegated_port>]`:
   3.1 an IP literal: that address, the port or 8448;
   3.2 with a port: that host and port, `Host` is `delegated_hostname:port`;
   3.3 SRV `_matrix-fed._tcp.<delegated_hostname>`, `Host` is the delegated hostname;
   3.4 deprecated SRV `_matrix._tcp.<delegated_hostname>`;
   3.5 the delegated hostname and 8448.
4. Without a usable well-known: SRV `_matrix-fed._tcp.<hostname>`, 5. then
   `_matrix._tcp.<hostname>`, 6. then `hostname:8448`.

The TLS certificate must be valid for the name the `Host` header carries (without
port); SRV targets are only where to connect. Well-known answers are cached as the spec
recommends: by Cache-Control / Expires, 24 h by default, at most 48 h; errors for an hour.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from ranvier.core.ids import InvalidIdentifierError, parse_server_name
from ranvier.core.json import InvalidJsonError, decode_json
from ranvier.federation.dns import DnsLookupError, DnsResolver, SrvRecord
from ranvier.federation.ip_filter import parse_ip
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock
from ranvier.util.lru import LruCache

logger = logging.getLogger(__name__)

DEFAULT_FEDERATION_PORT: Final = 8448
WELL_KNOWN_MAX_BYTES: Final = 50 * 1024
WELL_KNOWN_MAX_REDIRECTS: Final = 5

_DEFAULT_CACHE_MS: Final = 24 * 3600 * 1000
_MIN_CACHE_MS: Final = 5 * 60 * 1000
_MAX_CACHE_MS: Final = 48 * 3600 * 1000
_ERROR_CACHE_MS: Final = 3600 * 1000
_MAX_AGE_RE: Final = re.compile(r"max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ResolvedServer:
    """One place to send requests for a server name."""

    # Address or hostname to open the TCP connection to.
    connect_host: str
    port: int
    # The `Host` header (server or delegated name, with port where the spec says so).
    host_header: str
    # The name the TLS certificate must be valid for (also the SNI).
    tls_server_name: str


@dataclass(frozen=True, slots=True)
class WellKnownResponse:
    status: int
    body: bytes
    # Lower-cased header names.
    headers: Mapping[str, str]


class WellKnownError(Exception):
    """Fetching `/.well-known/matrix/server` failed (network, TLS, too large)."""


class WellKnownFetcher(Protocol):
    async def fetch_well_known(self, hostname: str) -> WellKnownResponse:
        """GET https://<hostname>/.well-known/matrix/server following a few redirects;
        raise `WellKnownError` on failure."""
        ...


def _is_ip_literal(host: str) -> bool:
    return parse_ip(host) is not None


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def cache_period_ms(headers: Mapping[str, str], now_ms: int) -> int:
    """How long to keep a well-known answer: Cache-Control max-age, else Expires, else
    24 h; clamped to [5 min, 48 h]."""
    period: int | None = None
    cache_control = headers.get("cache-control", "")
    if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
        period = 0
    elif (m := _MAX_AGE_RE.search(cache_control)) is not None:
        period = int(m.group(1)) * 1000
    elif expires := headers.get("expires"):
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            period = int(when.timestamp() * 1000) - now_ms
    if period is None:
        period = _DEFAULT_CACHE_MS
    return max(_MIN_CACHE_MS, min(period, _MAX_CACHE_MS))


def parse_well_known(body: bytes) -> str | None:
    """The `m.server` value if the body is a JSON object with a valid server name."""
    try:
        doc = decode_json(body)
    except InvalidJsonError:
        return None
    if not isinstance(doc, dict):
        return None
    server = doc.get("m.server")
    if not isinstance(server, str):
        return None
    try:
        parse_server_name(server)
    except InvalidIdentifierError:
        return None
    return server


def _srv_order(records: list[SrvRecord]) -> list[SrvRecord]:
    # RFC 2782: lowest priority first. Within a priority the spec leaves the weighted
    # random choice to us; heavier first keeps resolution deterministic.
    usable = [r for r in records if r.target and r.target != "."]
    return sorted(usable, key=lambda r: (r.priority, -r.weight, r.target))


class ServerResolver:
    def __init__(
        self,
        dns: DnsResolver,
        well_known: WellKnownFetcher,
        clock: Clock,
        *,
        cache_size: int = 10_000,
    ) -> None:
        self._dns = dns
        self._well_known = well_known
        self._clock = clock
        # hostname -> (delegated server name or None, expiry in ms)
        self._cache: LruCache[str, tuple[str | None, int]] = LruCache(cache_size)
        self._locks = KeyedLock()

    async def resolve(self, server_name: str) -> list[ResolvedServer]:
        """Candidates to try in order; raise `InvalidIdentifierError` for a bad name."""
        host, port = parse_server_name(server_name)
        if _is_ip_literal(host):
            # Step 1.
            return [
                ResolvedServer(
                    _strip_brackets(host),
                    port or DEFAULT_FEDERATION_PORT,
                    server_name,
                    _strip_brackets(host),
                )
            ]
        if port is not None:
            # Step 2.
            return [ResolvedServer(host, port, server_name, host)]
        delegated = await self.get_delegated_server(host)
        if delegated is not None:
            return await self._resolve_delegated(delegated)
        # Steps 4-6.
        return await self._resolve_by_srv(host)

    async def _resolve_delegated(self, delegated: str) -> list[ResolvedServer]:
        d_host, d_port = parse_server_name(delegated)
        if _is_ip_literal(d_host):
            # Step 3.1.
            ip = _strip_brackets(d_host)
            return [
                ResolvedServer(ip, d_port or DEFAULT_FEDERATION_PORT, delegated, ip)
            ]
        if d_port is not None:
            # Step 3.2.
            return [ResolvedServer(d_host, d_port, delegated, d_host)]
        # Steps 3.3-3.5.
        return await self._resolve_by_srv(d_host)

    async def _resolve_by_srv(self, host: str) -> list[ResolvedServer]:
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            try:
                records = _srv_order(await self._dns.resolve_srv(f"{service}.{host}"))
            except DnsLookupError as e:
                logger.info("SRV lookup for %s failed: %s", host, e)
                records = []
            if records:
                return [ResolvedServer(r.target, r.port, host, host) for r in records]
        return [ResolvedServer(host, DEFAULT_FEDERATION_PORT, host, host)]

    async def get_delegated_server(self, hostname: str) -> str | None:
        """The `m.server` of `hostname`'s well-known, from the cache when fresh."""
        now = self._clock.time_msec()
        cached = self._cache.get(hostname)
        if cached is not None and cached[1] > now:
            return cached[0]
        # One fetch per hostname at a time; the others wait and read the cache.
        async with self._locks.lock(hostname):
            now = self._clock.time_msec()
            cached = self._cache.get(hostname)
            if cached is not None and cached[1] > now:
                return cached[0]
            delegated, period = await self._fetch(hostname, now)
            self._cache.set(hostname, (delegated, now + period))
            return delegated

    async def _fetch(self, hostname: str, now: int) -> tuple[str | None, int]:
        try:
            response = await self._well_known.fetch_well_known(hostname)
        except WellKnownError as e:
            logger.info("no .well-known/matrix/server for %s: %s", hostname, e)
            return None, _ERROR_CACHE_MS
        if response.status != 200:
            return None, _ERROR_CACHE_MS
        delegated = parse_well_known(response.body)
        if delegated is None:
            logger.info("invalid .well-known/matrix/server for %s", hostname)
            return None, _ERROR_CACHE_MS
        return delegated, cache_period_ms(response.headers, now)
