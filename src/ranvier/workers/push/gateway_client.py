"""HTTP client for push gateways.

Gateway URLs come from clients, so connections obey the same outbound IP policy as
federation (a pusher must not make the server reach into its own network): names are
resolved through the blocklisting resolver and every socket is checked before
`connect()`, IP literals included. Every request has a total timeout.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import BlocklistingResolver, guarded_socket_factory


class GatewayError(Exception):
    """The gateway could not be reached or did not answer in time."""


class GatewayClient:
    def __init__(
        self,
        ip_filter: IpRangeFilter,
        dns: DnsResolver,
        *,
        timeout: float = 15.0,
        user_agent: str = "Ranvier",
    ) -> None:
        self._filter = ip_filter
        self._dns = dns
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=BlocklistingResolver(self._dns, self._filter),
                    socket_factory=guarded_socket_factory(self._filter),
                    use_dns_cache=False,
                    limit=100,
                ),
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def post_json(self, url: str, body: Any) -> tuple[int, Any]:
        """(status, parsed JSON or None). Raises `GatewayError` when there is no
        answer (refused address, connection failure, timeout)."""
        try:
            async with self._get_session().post(
                url,
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                try:
                    parsed = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    parsed = None
                return resp.status, parsed
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise GatewayError(f"{type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._dns.close()
