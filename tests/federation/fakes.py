"""Fakes for federation tests: DNS without a network, and a multi-server harness."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ranvier.api.http import build_http_app
from ranvier.app.homeserver import Homeserver, build_homeserver
from ranvier.config.load import load_config
from ranvier.federation.dns import DnsLookupError, SrvRecord
from ranvier.federation.transport import FederationTransport, InProcessTransport
from ranvier.util.clock import Clock
from tests.helpers.homeserver import write_test_config


@dataclass
class FakeDns:
    """Names -> addresses; SRV names -> records. `port_map` rewrites ports, so that a
    name's :443 (well-known) or :8448 can point at a test server's real port."""

    hosts: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[SrvRecord]] = field(default_factory=dict)
    port_map: dict[tuple[str, int], int] = field(default_factory=dict)
    failing_srv: set[str] = field(default_factory=set)
    srv_queries: list[str] = field(default_factory=list)
    closed: bool = False

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        self.srv_queries.append(name)
        if name in self.failing_srv:
            raise DnsLookupError(f"SERVFAIL {name}")
        return list(self.srv.get(name, []))

    async def resolve_host(self, host: str, port: int) -> list[tuple[str, int]]:
        mapped = self.port_map.get((host, port), port)
        return [(ip, mapped) for ip in self.hosts.get(host, [])]

    async def close(self) -> None:
        self.closed = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningPeer:
    server_name: str
    homeserver: Homeserver
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _resources() -> list[str]:
    return ["client", "federation", "keys"]


@asynccontextmanager
async def start_peer(
    data_dir: Path,
    server_name: str,
    *,
    transport: FederationTransport,
    overrides: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    ssl_context: Any = None,
    port: int = 0,
) -> AsyncIterator[RunningPeer]:
    """One Ranvier on 127.0.0.1 (plain HTTP unless `ssl_context`), federating through
    `transport`; registered with it when that is an `InProcessTransport`."""
    settings: dict[str, Any] = {"federation": {"trusted_key_servers": []}}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    paths = write_test_config(data_dir, server_name, settings)
    config = load_config(paths, dict(os.environ))
    hs = await build_homeserver(config, clock=clock, federation_transport=transport)
    runner: web.AppRunner | None = None
    try:
        await hs.start()
        app = build_http_app(
            hs.endpoints_for(_resources()),
            authenticator=hs.authenticator,
            limiter=hs.limiter,
            settings=hs.http_settings,
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
        await site.start()
        bound = port or int(runner.addresses[0][1])
        peer = RunningPeer(server_name, hs, bound)
        if isinstance(transport, InProcessTransport):
            transport.register(server_name, peer.base_url)
        yield peer
    finally:
        if runner is not None:
            await runner.cleanup()
        await hs.stop()


@asynccontextmanager
async def in_process_network(
    tmp_path: Path,
    names: list[str],
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[dict[str, RunningPeer]]:
    """Several Ranvier instances, each with its own `InProcessTransport` (so a test
    can cut one server off from another by unregistering a route)."""
    async with AsyncExitStack() as stack:
        transports = {name: InProcessTransport() for name in names}
        peers: dict[str, RunningPeer] = {}
        for name in names:
            peers[name] = await stack.enter_async_context(
                start_peer(
                    tmp_path / name,
                    name,
                    transport=transports[name],
                    overrides=(overrides or {}).get(name),
                )
            )
        for name, transport in transports.items():
            for other, peer in peers.items():
                if other != name:
                    transport.register(other, peer.base_url)
        yield peers


def transport_of(peer: RunningPeer) -> InProcessTransport:
    fed = peer.homeserver.federation
    assert fed is not None
    assert isinstance(fed.transport, InProcessTransport)
    return fed.transport
