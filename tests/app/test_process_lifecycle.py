"""The server as an operator runs it: `ranvier init` + `ranvier run` in a real process.

Start-up answers /versions, SIGTERM lets an in-flight request finish (a long-poll /sync is
answered at once instead of being cut off), the process exits 0 and closes the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from tests.helpers.accounts import Api

RANVIER = [sys.executable, "-m", "ranvier.app.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for_versions(session: aiohttp.ClientSession, base: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 60:
        try:
            async with session.get(base + "/_matrix/client/versions") as r:
                if r.status == 200:
                    return time.monotonic() - start
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not answer /versions within 60 s")


async def test_run_serves_then_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "data"
    init = await asyncio.create_subprocess_exec(
        *RANVIER, "init", "--server-name", "localhost", "--data-dir", str(data),
        "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await init.wait() == 0
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "registration": {"enabled": True, "require_token": False},
                "rate_limits": {"enabled": False},
            }
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        *RANVIER, "run", "--config", str(data / "homeserver.yaml"),
        "--config", str(overrides),
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, base)
            api = Api(session, base, "localhost")
            token = (await api.register("alice"))["access_token"]
            first = await api.call("GET", "/sync", token=token)
            assert first[0] == 200
            since = first[1]["next_batch"]

            # A long-poll is in flight when SIGTERM arrives: it must be answered, not cut.
            poll = asyncio.create_task(
                api.call("GET", f"/sync?since={since}&timeout=30000", token=token)
            )
            await asyncio.sleep(0.5)
            assert not poll.done()
            proc.send_signal(signal.SIGTERM)
            status, body = await asyncio.wait_for(poll, timeout=15)
            assert status == 200
            assert "next_batch" in body
        rc = await asyncio.wait_for(proc.wait(), timeout=20)
        assert rc == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "stopped cleanly" in log
        assert "Traceback" not in log
        # The SQLite database was checkpointed and closed: no leftover WAL with content.
        wal = data / "homeserver.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
