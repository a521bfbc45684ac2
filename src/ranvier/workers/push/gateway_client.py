"""HTTP client for push gateways.

Gateway URLs come from clients, so connections obey the same outbound IP policy as
federation (a pusher must not make the server reach into its own network): the shared
`guarded_connector` resolves names through the blocklisting resolver and checks every
socket before `connect()`, IP literals included. Redirects are not followed (a gateway
answers, it does not send us elsewhere). Every request has a total timeout.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import orjson

from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import (
    TransportError,
    guarded_connector,
    read_capped,
)

# A gateway answers `{"rejected": [...]}`: anything bigger is not worth reading.
MAX_GATEWAY_RESPONSE_BYTES: Final = 64 * 1024


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
                connector=guarded_connector(self._dns, self._filter, limit=100),
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
                raw = await read_capped(resp, MAX_GATEWAY_RESPONSE_BYTES)
                try:
                    parsed = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    parsed = None
                return resp.status, parsed
        except (aiohttp.ClientError, OSError, TimeoutError, TransportError) as e:
            raise GatewayError(f"{type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._dns.close()
