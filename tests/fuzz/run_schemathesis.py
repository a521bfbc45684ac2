"""Fuzz the Client-Server API with schemathesis against a real in-process server.

    .venv/bin/pip install schemathesis        # not a dev dependency: see below
    .venv/bin/python -m tests.fuzz.run_schemathesis [--examples 40] [--engine postgres]
        [--checks not_a_server_error,response_schema_conformance] [-- extra st args]

Starts Ranvier on loopback (open registration, rate limits off, federation unable to
reach any address), registers a user, creates a public room, then runs `st run` on the
spec's bundled OpenAPI file with that user's token. Exits with schemathesis's status; the
server's log (tracebacks included) is written next to the report.

Why a script and not a test: a useful run takes ~5 minutes (157 operations x 40
examples) and its inputs are random, so a bounded run under 90 s would be both shallow
and flaky. Every bug it (and hand-crafted inputs) found has a deterministic regression
test in tests/api/test_bad_input.py instead. Operations that end the session
(logout, deactivate, password change, device deletion) are excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.homeserver import running_homeserver

SPEC = Path(__file__).resolve().parents[1] / "data/spec/openapi/client-server.json"
EXCLUDE = r"(logout|deactivate|account/password|delete_devices|devices/\{deviceId\}$)"
PASSWORD = "fuzz-password-1234"


def _overrides(port: int, dsn: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "registration": {"enabled": True, "require_token": False, "allow_guests": True},
        # Loopback only: no federation request may leave the machine.
        "federation": {
            "ip_range_blocklist": ["0.0.0.0/0", "::/0"],
            "trusted_key_servers": [],
        },
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "resources": ["client", "federation", "keys", "media"],
            }
        ],
    }
    if dsn is not None:
        out["database"] = {"engine": "postgres", "dsn": dsn}
    return out


async def _register(base: str) -> str:
    url = f"{base}/_matrix/client/v3"
    body: dict[str, Any] = {"username": "fuzzer", "password": PASSWORD}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/register", json=body) as r:
            session = (await r.json())["session"]
        body["auth"] = {"type": "m.login.dummy", "session": session}
        async with s.post(f"{url}/register", json=body) as r:
            token: str = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        room = {"preset": "public_chat", "room_alias_name": "fuzz"}
        async with s.post(f"{url}/createRoom", json=room, headers=headers) as r:
            assert r.status == 200, await r.text()
    return token


async def _main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="ranvier-fuzz-"))
    log_path = work / "server.log"
    handler = logging.FileHandler(log_path)
    logging.getLogger().addHandler(handler)
    async with running_homeserver(
        work / "data", overrides=_overrides(args.port, args.dsn)
    ) as hs:
        token = await _register(hs.base_url)
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("st")),
            "run",
            str(SPEC),
            "--url",
            hs.base_url,
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            args.checks,
            "--exclude-path-regex",
            EXCLUDE,
            "-n",
            str(args.examples),
            "--report",
            "ndjson",
            "--report-dir",
            str(work / "report"),
            *args.extra,
        )
        rc = await proc.wait()
    print(f"report and server log: {work}")
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--checks", default="not_a_server_error")
    parser.add_argument("--port", type=int, default=18448)
    parser.add_argument("--dsn", default=os.environ.get("RANVIER_FUZZ_POSTGRES_DSN"))
    parser.add_argument("extra", nargs="*", help="more `st run` arguments (after --)")
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
