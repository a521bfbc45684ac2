"""Fetching arbitrary web URLs for the media repository (URL previews, the `Location`
of a federation media response), with the SSRF protections of federation.

Every hop's host is checked against the IP-range policy before we connect (so a refused
destination is reported as such), and the connector enforces the same policy again on
the address actually connected to, after DNS (`guarded_connector`, shared with
federation and push): a name re-resolving to an internal address between the two
checks (DNS rebinding) is still refused. Redirects are followed by hand, each hop
checked. Bodies are capped after decompression and the whole fetch has one deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import aiohttp
from yarl import URL

from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter, parse_ip
from ranvier.federation.transport import (
    TransportError,
    guarded_connector,
    read_capped,
    response_headers,
)

MAX_REDIRECTS: Final = 5
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


class WebFetchError(Exception):
    """No usable response (DNS, connection, TLS, timeout, bad status, too large)."""


class BlockedDestinationError(WebFetchError):
    """The URL's host is, or resolves only to, addresses the policy refuses."""


class ResponseTooLargeError(WebFetchError):
    pass


@dataclass(frozen=True, slots=True)
class WebResponse:
    url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class WebFetcher:
    def __init__(
        self,
        ip_filter: IpRangeFilter,
        dns: DnsResolver,
        *,
        user_agent: str,
        timeout: float = 10.0,
    ) -> None:
        self._filter = ip_filter
        self._dns = dns
        self._user_agent = user_agent
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = guarded_connector(self._dns, self._filter, limit=50)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def check_destination(self, url: URL) -> None:
        """Refuse non-http(s) URLs and hosts the IP policy blocks."""
        if url.scheme not in ("http", "https") or not url.host:
            raise WebFetchError("only http and https URLs can be fetched")
        literal = parse_ip(url.host)
        if literal is not None:
            if not self._filter.is_allowed(literal):
                raise BlockedDestinationError(f"{url.host} is blocked")
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await self._dns.resolve_host(url.host, port)
        if not addresses:
            raise WebFetchError(f"cannot resolve {url.host}")
        if not any(self._filter.is_allowed(ip) for ip, _ in addresses):
            raise BlockedDestinationError(
                f"{url.host} resolves only to blocked addresses"
            )

    async def get(self, url: str, *, max_bytes: int) -> WebResponse:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(URL(url), max_bytes)
        except TimeoutError:
            raise WebFetchError(f"timed out after {self._timeout}s") from None
        except TransportError as e:
            raise ResponseTooLargeError(str(e)) from None
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise WebFetchError(f"{type(e).__name__}: {e}") from None

    async def _follow(self, url: URL, max_bytes: int) -> WebResponse:
        session = self._get_session()
        for _ in range(MAX_REDIRECTS + 1):
            await self.check_destination(url)
            async with session.get(url, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECT_STATUSES and location:
                    url = url.join(URL(location))
                    continue
                body = await read_capped(resp, max_bytes)
                return WebResponse(str(url), resp.status, response_headers(resp), body)
        raise WebFetchError("too many redirects")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
