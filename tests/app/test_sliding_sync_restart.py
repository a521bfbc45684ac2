"""Sliding sync connections survive a server restart (their state is in the database):
a `pos` handed out before the restart still works after it, without the client
starting over, through raw HTTP and through matrix-js-sdk's SlidingSync kept running
across the restart. Both engines."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from ranvier.storage.txn import EngineName
from tests.conftest import fresh_postgres_database, require_postgres
from tests.helpers.accounts import OPEN_REGISTRATION, Api
from tests.helpers.homeserver import _deep_merge, running_homeserver
from tests.helpers.js import run_js_client
from tests.helpers.sync import User, new_user

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575"
LISTS = {"all": {"ranges": [[0, 9]], "timeline_limit": 5, "required_state": []}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _settings(engine: EngineName, port: int) -> Iterator[dict[str, Any]]:
    """Server overrides kept across restarts: the same database and port."""
    with ExitStack() as stack:
        merged = _deep_merge(
            OPEN_REGISTRATION,
            {
                "listeners": [
                    {
                        "port": port,
                        "bind_addresses": ["127.0.0.1"],
                        "resources": ["client"],
                    }
                ]
            },
        )
        if engine == "postgres":
            dsn = stack.enter_context(fresh_postgres_database(require_postgres()))
            merged = _deep_merge(
                merged, {"database": {"engine": "postgres", "dsn": dsn}}
            )
        yield merged


@asynccontextmanager
async def _server(tmp_path: Path, overrides: dict[str, Any]) -> AsyncIterator[Api]:
    async with (
        running_homeserver(tmp_path, overrides=overrides) as hs,
        aiohttp.ClientSession() as session,
    ):
        yield Api(session, hs.base_url, hs.server_name)


async def _ss(user: User, pos: str | None = None) -> tuple[int, dict[str, Any]]:
    query = f"?pos={pos}" if pos else ""
    return await user.api.call(
        "POST", "/sync" + query, token=user.token, json={"lists": LISTS}, prefix=SS
    )


async def test_pos_works_after_restart(tmp_path: Path, db_engine: EngineName) -> None:
    with _settings(db_engine, _free_port()) as overrides:
        async with _server(tmp_path, overrides) as api:
            alice = await new_user(api, "alice")
            room = await alice.create_room(name="Kept")
            await alice.send(room, "before")
            status, first = await _ss(alice)
            assert status == 200
            assert first["rooms"][room]["initial"] is True
        async with _server(tmp_path, overrides) as api:
            alice = User(api, alice.user_id, alice.token, alice.device_id)
            await alice.send(room, "after")
            status, after = await _ss(alice, first["pos"])
            assert status == 200, after
            got = after["rooms"][room]
            assert "initial" not in got
            assert [e["content"]["body"] for e in got["timeline"]] == ["after"]


async def test_js_sdk_connection_survives_restart(
    tmp_path: Path, db_engine: EngineName
) -> None:
    port = _free_port()
    ready = tmp_path / "ready"
    with _settings(db_engine, port) as overrides:
        async with _server(tmp_path, overrides) as api:
            alice = await new_user(api, "alice")
            room = await alice.create_room(name="Kept")
            await alice.send(room, "before")
            client = asyncio.ensure_future(
                run_js_client(
                    "sliding_sync_across_restart.mjs",
                    {
                        "HS_URL": f"http://127.0.0.1:{port}",
                        "TOKEN": alice.token,
                        "USER_ID": alice.user_id,
                        "DEVICE_ID": alice.device_id,
                        "ROOM": room,
                        "READY_FILE": str(ready),
                    },
                    time_limit_s=120,
                )
            )
            for _ in range(600):
                if ready.exists() or client.done():
                    break
                await asyncio.sleep(0.1)
            assert ready.exists(), await client
        # Down for a moment: the client's requests fail and it retries with its pos.
        await asyncio.sleep(1)
        async with _server(tmp_path, overrides) as api:
            alice = User(api, alice.user_id, alice.token, alice.device_id)
            await alice.send(room, "after restart")
            out = await asyncio.wait_for(client, 90)
    assert out["before"] == ["before"]
    assert out["after"] == ["after restart"]
    assert out["initialAfterReady"] == 0
    assert "M_UNKNOWN_POS" not in out["errors"]
