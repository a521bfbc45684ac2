"""DNS for federation, behind a small protocol so tests fake it without a network.

`SystemDnsResolver` asks the system resolver (getaddrinfo: /etc/hosts, nsswitch) for
addresses and c-ares (`aiodns`) for SRV records, which the standard library cannot look
up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Protocol

import aiodns
import aiodns.error
import pycares

logger = logging.getLogger(__name__)


class DnsLookupError(Exception):
    """The lookup failed (timeout, server failure), as opposed to "no such record"."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class DnsResolver(Protocol):
    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        """SRV records of `name` (empty when there are none); `DnsLookupError` when
        the lookup itself failed."""
        ...

    async def resolve_host(self, host: str, port: int) -> list[tuple[str, int]]:
        """Addresses to connect to for `host:port`, as (ip, port) pairs; empty when the
        name does not resolve."""
        ...

    async def close(self) -> None: ...


# c-ares answers "no such name / no data" with these: not a failure, just no record.
_NO_RECORD_ERRORS = frozenset({aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA})


class SystemDnsResolver:
    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._aiodns: aiodns.DNSResolver | None = None

    def _srv_resolver(self) -> aiodns.DNSResolver:
        if self._aiodns is None:
            self._aiodns = aiodns.DNSResolver(
                loop=asyncio.get_running_loop(), timeout=self._timeout
            )
        return self._aiodns

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        try:
            result = await self._srv_resolver().query_dns(name, "SRV")
        except aiodns.error.DNSError as e:
            code = e.args[0] if e.args else None
            if code in _NO_RECORD_ERRORS:
                return []
            raise DnsLookupError(f"SRV lookup of {name} failed: {e}") from None
        records: list[SrvRecord] = []
        for rr in result.answer:
            data = rr.data
            if isinstance(data, pycares.SRVRecordData):
                target = data.target.rstrip(".")
                records.append(SrvRecord(data.priority, data.weight, data.port, target))
        return records

    async def resolve_host(self, host: str, port: int) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as e:
            logger.debug("cannot resolve %s: %s", host, e)
            return []
        out: list[tuple[str, int]] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            pair = (str(sockaddr[0]), int(sockaddr[1]))
            if pair not in out:
                out.append(pair)
        return out

    async def close(self) -> None:
        if self._aiodns is not None:
            await self._aiodns.close()
            self._aiodns = None
