"""Fixtures of the Synapse interop suite: one real Synapse per test session (TLS on
127.0.0.2), a fresh Ranvier per test (TLS on 127.0.0.3), a throw-away CA both trust.

Synapse is installed from PyPI into `bench/.venv-synapse` on first use. Under CI (`CI`
set) failing to install or start it fails the suite; elsewhere the tests are skipped
with the reason.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ranvier.app.server import RunningServer, start_server
from ranvier.config.load import load_config
from tests.federation.interop.synapse_server import (
    SynapseServer,
    SynapseUnavailable,
    ensure_synapse_installed,
    free_port,
)
from tests.federation.matrix_client import MatrixClient
from tests.federation.tls import LocalCa, make_test_ca
from tests.helpers.ci import missing_component
from tests.helpers.homeserver import write_test_config

SYNAPSE_HOST = "127.0.0.2"
RANVIER_HOST = "127.0.0.3"


# The first test may install Synapse from PyPI (minutes on a fresh machine) and start it.
INTEROP_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(INTEROP_TIMEOUT_S))


@pytest.fixture(scope="session")
def interop_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_test_ca(tmp_path_factory.mktemp("interop-ca"))


@pytest.fixture(scope="session")
def synapse(
    tmp_path_factory: pytest.TempPathFactory, interop_ca: LocalCa
) -> Iterator[SynapseServer]:
    try:
        python = ensure_synapse_installed()
        cert, key = interop_ca.issue(SYNAPSE_HOST)
        server = SynapseServer(
            python,
            tmp_path_factory.mktemp("synapse"),
            SYNAPSE_HOST,
            cert,
            key,
            interop_ca.ca_file,
        )
        server.start()
    except SynapseUnavailable as e:
        missing_component(f"Synapse unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RanvierPeer:
    data_dir: Path
    port: int
    client_port: int
    ca: LocalCa
    running: RunningServer | None = None

    @property
    def server_name(self) -> str:
        return f"{RANVIER_HOST}:{self.port}"

    @property
    def client_url(self) -> str:
        return f"http://{RANVIER_HOST}:{self.client_port}"

    async def start(self) -> None:
        cert, key = self.ca.issue(RANVIER_HOST)
        overrides = {
            "registration": {"enabled": True, "require_token": False},
            "federation": {
                "verify_tls": True,
                "ca_file": str(self.ca.ca_file),
                "ip_range_allowlist": ["127.0.0.0/8"],
                "trusted_key_servers": [],
            },
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [RANVIER_HOST],
                    "resources": ["client", "federation", "keys"],
                    "tls": {
                        "certificate_path": str(cert),
                        "private_key_path": str(key),
                    },
                },
                {
                    "port": self.client_port,
                    "bind_addresses": [RANVIER_HOST],
                    "resources": ["client"],
                },
            ],
        }
        paths = write_test_config(self.data_dir, self.server_name, overrides)
        config = load_config(paths, dict(os.environ))
        self.running = await start_server(config)

    async def stop(self) -> None:
        running, self.running = self.running, None
        if running is not None:
            await running.stop()


@asynccontextmanager
async def ranvier_peer(data_dir: Path, ca: LocalCa) -> AsyncIterator[RanvierPeer]:
    peer = RanvierPeer(data_dir, free_port(RANVIER_HOST), free_port(RANVIER_HOST), ca)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def ranvier(tmp_path: Path, interop_ca: LocalCa) -> AsyncIterator[RanvierPeer]:
    async with ranvier_peer(tmp_path / "ranvier", interop_ca) as peer:
        yield peer


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def syn_alice(
    synapse: SynapseServer, http: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> MatrixClient:
    client = MatrixClient(http, synapse.client_url)
    await client.register(_unique("alice", request))
    return client


@pytest.fixture
async def rv_bob(ranvier: RanvierPeer, http: aiohttp.ClientSession) -> MatrixClient:
    client = MatrixClient(http, ranvier.client_url)
    await client.register("bob")
    return client


def _unique(base: str, request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower()
    cleaned = "".join(c if c.isalnum() else "_" for c in name)[-40:]
    return f"{base}_{cleaned}"
