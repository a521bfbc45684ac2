"""HTTP client for identity servers (third-party invites).

Clients name the identity server (`id_server` in an invite) and identity servers name
further URLs (`key_validity_url`), so every request obeys the outbound IP policy of
federation: the destination host is checked before connecting (literal IPs directly,
names after DNS) so that a refused destination is reported as such, and the connector
checks the address actually connected to again (`BlocklistingResolver`,
`guarded_socket_factory`), which also covers DNS rebinding. Redirects are followed by
hand (at most `MAX_REDIRECTS`), each hop checked the same way. Each request has one
deadline and its body is capped. Identity servers are spoken to over HTTPS with the
federation TLS settings (`federation.verify_tls`, `federation.ca_file`), as Synapse
does.

A session lives for one call: third-party invites are rare, and nothing is left open
for the server's shutdown to close.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from ranvier.core.ids import is_valid_server_name
from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter, parse_ip
from ranvier.federation.transport import (
    BlocklistingResolver,
    TransportError,
    guarded_socket_factory,
    read_capped,
)

__all__ = [
    "IdentityServerBlockedError",
    "IdentityServerClient",
    "IdentityServerError",
    "IdentityServerRefusedError",
    "IdentityServerUnavailableError",
]

MAX_REDIRECTS: Final = 3
MAX_RESPONSE_BYTES: Final = 1024 * 1024
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class IdentityServerError(Exception):
    """The identity server could not be used."""


class IdentityServerBlockedError(IdentityServerError):
    """The identity server's address (or a redirect's) is refused by the IP policy, or
    the name is not a server name."""


class IdentityServerUnavailableError(IdentityServerError):
    """No usable answer: DNS, connection, TLS, timeout, too large, not JSON."""


class IdentityServerRefusedError(IdentityServerError):
    """An HTTP error answer from the identity server."""

    def __init__(self, status: int, errcode: str | None, message: str) -> None:
        super().__init__(f"{status} {errcode or ''} {message}".strip())
        self.status = status
        self.errcode = errcode


class IdentityServerClient:
    def __init__(
        self,
        ip_filter: IpRangeFilter,
        dns: DnsResolver,
        tls: ssl.SSLContext,
        *,
        timeout: float = 15.0,
        user_agent: str = "Ranvier",
    ) -> None:
        self._filter = ip_filter
        self._dns = dns
        self._tls = tls
        self._timeout = timeout
        self._user_agent = user_agent

    @staticmethod
    def base_url(id_server: str) -> str:
        """`https://<id_server>`; `id_server` is a hostname with an optional port."""
        if not is_valid_server_name(id_server):
            raise IdentityServerBlockedError(f"not a server name: {id_server!r}")
        return f"https://{id_server}"

    async def get_json(
        self,
        url: str,
        *,
        args: Mapping[str, str] | None = None,
        access_token: str | None = None,
    ) -> Any:
        target = URL(url)
        if args:
            target = target.update_query(dict(args))
        return await self._request("GET", target, None, access_token)

    async def post_json(
        self, url: str, body: Any, *, access_token: str | None = None
    ) -> Any:
        return await self._request("POST", URL(url), body, access_token)

    async def _request(
        self, method: str, url: URL, body: Any, access_token: str | None
    ) -> Any:
        headers = {"User-Agent": self._user_agent}
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._session(headers) as session,
            ):
                status, raw = await self._follow(session, method, url, data)
        except TimeoutError:
            raise IdentityServerUnavailableError(
                f"no answer within {self._timeout}s"
            ) from None
        except TransportError as e:
            raise IdentityServerUnavailableError(str(e)) from None
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise IdentityServerUnavailableError(f"{type(e).__name__}: {e}") from None
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        if not 200 <= status < 300:
            errcode = message = None
            if isinstance(parsed, dict):
                errcode, message = parsed.get("errcode"), parsed.get("error")
            raise IdentityServerRefusedError(
                status,
                errcode if isinstance(errcode, str) else None,
                message if isinstance(message, str) else "",
            )
        if parsed is None:
            raise IdentityServerUnavailableError("the answer is not JSON")
        return parsed

    def _session(self, headers: Mapping[str, str]) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=BlocklistingResolver(self._dns, self._filter),
            socket_factory=guarded_socket_factory(self._filter),
            ssl=self._tls,
            use_dns_cache=False,
            limit=4,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=dict(headers),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        data: bytes | None,
    ) -> tuple[int, bytes]:
        for _ in range(MAX_REDIRECTS + 1):
            await self.check_destination(url)
            async with session.request(
                method, url, data=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    if method != "GET" and resp.status not in (307, 308):
                        raise IdentityServerUnavailableError(
                            f"{resp.status} redirect of a {method}"
                        )
                    url = url.join(URL(location))
                    continue
                return resp.status, await read_capped(resp, MAX_RESPONSE_BYTES)
        raise IdentityServerUnavailableError("too many redirects")

    async def check_destination(self, url: URL) -> None:
        """Refuse non-https URLs and hosts the IP policy blocks."""
        if url.scheme != "https" or not url.host:
            raise IdentityServerBlockedError(f"only https URLs are allowed: {url}")
        literal = parse_ip(url.host)
        if literal is not None:
            if not self._filter.is_allowed(literal):
                raise IdentityServerBlockedError(f"{url.host} is blocked")
            return
        addresses = await self._dns.resolve_host(url.host, url.port or 443)
        if not addresses:
            raise IdentityServerUnavailableError(f"cannot resolve {url.host}")
        if not any(self._filter.is_allowed(ip) for ip, _ in addresses):
            raise IdentityServerBlockedError(
                f"{url.host} resolves only to blocked addresses"
            )
