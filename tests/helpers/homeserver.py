"""Start a real Ranvier in-process on a free loopback port, for API and client tests.

    async with running_homeserver(tmp_path) as hs:
        async with aiohttp.ClientSession() as s:
            await s.get(hs.base_url + "/_matrix/client/versions")

Config is the generated default (`ranvier init`) layered with per-test overrides, so tests
exercise the same loading path operators use.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ranvier.app.cli import main as cli_main
from ranvier.app.server import RunningServer, start_server
from ranvier.config.load import load_config
from ranvier.util.clock import Clock


@dataclass
class TestHomeserver:
    running: RunningServer
    base_url: str
    server_name: str
    data_dir: Path


def write_test_config(
    data_dir: Path,
    server_name: str = "localhost",
    overrides: dict[str, Any] | None = None,
) -> list[Path]:
    """`ranvier init` output plus an override file: port 0, rate limits off, open registration."""
    if not (data_dir / "homeserver.yaml").exists():
        rc = cli_main(
            [
                "init",
                "--server-name",
                server_name,
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
            ]
        )
        assert rc == 0
    base: dict[str, Any] = {
        "rate_limits": {"enabled": False},
        "registration": {"enabled": True},
        "listeners": [
            {
                "port": 0,
                "bind_addresses": ["127.0.0.1"],
                "resources": ["client", "federation", "keys", "media", "admin"],
            }
        ],
    }
    merged = _deep_merge(base, overrides or {})
    override_path = data_dir / "test-overrides.yaml"
    override_path.write_text(yaml.safe_dump(merged))
    return [data_dir / "homeserver.yaml", override_path]


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


@asynccontextmanager
async def running_homeserver(
    data_dir: Path,
    *,
    server_name: str = "localhost",
    overrides: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[TestHomeserver]:
    paths = write_test_config(data_dir, server_name, overrides)
    config = load_config(paths, dict(os.environ))
    running = await start_server(config, clock=clock)
    try:
        yield TestHomeserver(
            running=running,
            base_url=f"http://127.0.0.1:{running.port(0)}",
            server_name=server_name,
            data_dir=data_dir,
        )
    finally:
        await running.stop()
