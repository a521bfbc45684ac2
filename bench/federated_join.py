"""How long a Ranvier user takes to join a big room held by Synapse, over real TLS
federation on loopback.

    .venv/bin/python -m bench.federated_join --members 1000

Starts Synapse (bench/.venv-synapse, installed by bench/setup_synapse.sh) on 127.0.0.2
and Ranvier in this process on 127.0.0.3, both with certificates from a throw-away CA;
fills a public room on Synapse with `--members` users (admin API: create user, force
join), then times `POST /join/#alias` on Ranvier: make_join, send_join (the full state
and auth chain), checking every event, persisting, and the first /members answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.federation.interop.synapse_server import (
    SynapseServer,
    ensure_synapse_installed,
    free_port,
)
from tests.federation.matrix_client import MatrixClient, q
from tests.federation.tls import make_test_ca
from tests.helpers.homeserver import write_test_config

from ranvier.app.server import start_server
from ranvier.config.load import load_config

SYNAPSE_HOST = "127.0.0.2"
RANVIER_HOST = "127.0.0.3"


async def _fill_room(
    http: aiohttp.ClientSession, synapse: SynapseServer, token: str, room_id: str,
    members: int, concurrency: int,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    base = synapse.client_url
    sem = asyncio.Semaphore(concurrency)

    async def add(i: int) -> None:
        user_id = f"@member{i:05d}:{synapse.server_name}"
        async with sem:
            async with http.put(
                f"{base}/_synapse/admin/v2/users/{q(user_id)}",
                json={"displayname": f"Member {i}"},
                headers=headers,
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
            async with http.post(
                f"{base}/_synapse/admin/v1/join/{q(room_id)}",
                json={"user_id": user_id},
                headers=headers,
            ) as resp:
                assert resp.status == 200, await resp.text()

    started = time.monotonic()
    for start in range(0, members, 100):
        await asyncio.gather(*(add(i) for i in range(start, min(members, start + 100))))
        print(
            f"  {min(members, start + 100)} members ({time.monotonic() - started:.0f} s)"
        )


async def run(members: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    ca = make_test_ca(workdir / "ca")
    cert, key = ca.issue(SYNAPSE_HOST)
    synapse = SynapseServer(
        ensure_synapse_installed(),
        workdir / "synapse",
        SYNAPSE_HOST,
        cert,
        key,
        ca.ca_file,
    )
    synapse.start()
    try:
        return await _with_synapse(synapse, ca, members, concurrency, workdir)
    finally:
        synapse.stop()


async def _with_synapse(
    synapse: SynapseServer, ca: Any, members: int, concurrency: int, workdir: Path
) -> dict[str, Any]:
    admin_token = synapse.register_user("benchadmin", admin=True)
    port, client_port = free_port(RANVIER_HOST), free_port(RANVIER_HOST)
    rcert, rkey = ca.issue(RANVIER_HOST)
    overrides = {
        "registration": {"enabled": True, "require_token": False},
        "federation": {
            "ca_file": str(ca.ca_file),
            "ip_range_allowlist": ["127.0.0.0/8"],
            "trusted_key_servers": [],
        },
        "listeners": [
            {
                "port": port,
                "bind_addresses": [RANVIER_HOST],
                "resources": ["client", "federation", "keys"],
                "tls": {"certificate_path": str(rcert), "private_key_path": str(rkey)},
            },
            {
                "port": client_port,
                "bind_addresses": [RANVIER_HOST],
                "resources": ["client"],
            },
        ],
    }
    paths = write_test_config(workdir / "ranvier", f"{RANVIER_HOST}:{port}", overrides)
    running = await start_server(load_config(paths, dict(os.environ)))
    try:
        async with aiohttp.ClientSession() as http:
            admin = MatrixClient(http, synapse.client_url, token=admin_token)
            room_id = await admin.create_room(
                preset="public_chat", room_alias_name="big"
            )
            print(f"filling {room_id} with {members} members ...")
            await _fill_room(http, synapse, admin_token, room_id, members, concurrency)
            bob = MatrixClient(http, f"http://{RANVIER_HOST}:{client_port}")
            await bob.register("bob")
            started = time.monotonic()
            await bob.join(f"#big:{synapse.server_name}")
            joined_s = time.monotonic() - started
            count = len(await bob.members(room_id))
            usable_s = time.monotonic() - started
    finally:
        await running.stop()
    return {
        "members_on_synapse": members + 1,
        "members_seen_by_ranvier": count,
        "join_seconds": round(joined_s, 3),
        "join_and_members_seconds": round(usable_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fedjoin-") as tmp:
        result = asyncio.run(run(args.members, args.concurrency, Path(tmp)))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
