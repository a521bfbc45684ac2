"""De-outliering across two Ranvier servers in one process: an invite of a user whose
server is already in the room reaches that server twice, first out of band
(`PUT /invite`, stored as an outlier) and then in `/send`. The second copy must place
it in the room's DAG and state there, as Synapse does: the server's other members see
the invite and the invitee can join (SyTest "… with users from both servers")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ranvier.storage.txn import Txn
from tests.conftest import fresh_postgres_database, require_postgres
from tests.federation.fakes import in_process_network
from tests.federation.matrix_client import eventually
from tests.helpers.accounts import Api
from tests.helpers.federation import FedServer
from tests.helpers.sync import User

JsonDict = dict[str, Any]
HS1, HS2 = "hs1.test", "hs2.test"
DEADLINE_SECONDS = 30.0


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@asynccontextmanager
async def two_servers(
    tmp_path: Path, engine: str
) -> AsyncIterator[dict[str, FedServer]]:
    async with AsyncExitStack() as stack:
        overrides: dict[str, JsonDict] = {}
        for name in (HS1, HS2):
            settings: JsonDict = {
                "registration": {"enabled": True, "require_token": False}
            }
            if engine == "postgres":
                dsn = stack.enter_context(fresh_postgres_database(require_postgres()))
                settings["database"] = {"engine": "postgres", "dsn": dsn}
            overrides[name] = settings
        peers = await stack.enter_async_context(
            in_process_network(tmp_path, [HS1, HS2], overrides=overrides)
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield {
            name: FedServer(name, peer, Api(session, peer.base_url, name))
            for name, peer in peers.items()
        }


async def membership_of(viewer: User, room_id: str, user_id: str) -> str | None:
    status, body = await viewer.call(
        "GET", f"/rooms/{room_id}/state/m.room.member/{user_id}"
    )
    return str(body.get("membership")) if status == 200 else None


async def wait_membership(
    viewer: User, room_id: str, user_id: str, membership: str
) -> None:
    async def check() -> bool:
        return await membership_of(viewer, room_id, user_id) == membership

    await eventually(check, within=DEADLINE_SECONDS, what=f"{user_id} {membership}")


def timeline_ids(sync: JsonDict, room_id: str) -> list[str]:
    room = sync["rooms"].get("join", {}).get(room_id, {})
    return [e["event_id"] for e in room.get("timeline", {}).get("events", [])]


def invites_of(sync: JsonDict, room_id: str, user_id: str) -> list[JsonDict]:
    """The invitee's own member events in `rooms.invite[room_id]`."""
    room = sync["rooms"].get("invite", {}).get(room_id)
    if room is None:
        return []
    return [
        e
        for e in room["invite_state"]["events"]
        if e["type"] == "m.room.member" and e.get("state_key") == user_id
    ]


async def stored_flags(server: FedServer, event_id: str) -> tuple[bool, str | None]:
    def txn_fn(txn: Txn) -> tuple[bool, str | None]:
        txn.execute(
            "SELECT outlier, rejected_reason FROM events WHERE event_id = ?",
            (event_id,),
        )
        rows = txn.fetchall()
        assert len(rows) == 1, rows  # stored once, upgraded in place
        return bool(rows[0][0]), rows[0][1]

    db = server.peer.homeserver.db
    return await db.run_read_txn("test_stored_flags", txn_fn)


async def test_invite_to_a_server_already_in_the_room_enters_its_state(
    tmp_path: Path, engine: str
) -> None:
    async with two_servers(tmp_path, engine) as fed:
        alice = await fed[HS1].user("alice")
        bob = await fed[HS2].user("bob")
        carol = await fed[HS2].user("carol")
        room_id = await alice.create_room(preset="private_chat")
        await alice.invite(room_id, bob.user_id)
        await wait_membership(alice, room_id, bob.user_id, "invite")

        async def bob_joins() -> bool:
            status, _ = await bob.call("POST", f"/rooms/{room_id}/join", {})
            return status == 200

        await eventually(bob_joins, within=DEADLINE_SECONDS, what="bob joins")
        await wait_membership(alice, room_id, bob.user_id, "join")
        bob_since = (await bob.sync())["next_batch"]
        carol_since = (await carol.sync())["next_batch"]

        await alice.invite(room_id, carol.user_id)
        # hs2 got the invite out of band, then in alice's server's transaction.
        await wait_membership(bob, room_id, carol.user_id, "invite")
        state: list[JsonDict] = await bob.ok("GET", f"/rooms/{room_id}/state")  # type: ignore[assignment]
        invite = next(
            e
            for e in state
            if e["type"] == "m.room.member" and e["state_key"] == carol.user_id
        )
        assert await stored_flags(fed[HS2], invite["event_id"]) == (False, None)
        later = await bob.sync(bob_since)
        assert invite["event_id"] in timeline_ids(later, room_id)

        # The invitee sees one invite, on an incremental and on an initial sync.
        for sync in (await carol.sync(carol_since), await carol.sync()):
            own = invites_of(sync, room_id, carol.user_id)
            assert [(e["content"]["membership"], e["sender"]) for e in own] == [
                ("invite", alice.user_id)
            ], sync["rooms"].get("invite")

        await carol.join(room_id)
        await wait_membership(bob, room_id, carol.user_id, "join")
        await wait_membership(alice, room_id, carol.user_id, "join")
        joined = await carol.sync()
        assert room_id in joined["rooms"]["join"]
        assert room_id not in joined["rooms"].get("invite", {})
