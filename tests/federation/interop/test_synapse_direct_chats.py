"""Direct chats and invite rejections between Ranvier and Synapse: `createRoom` with a
Synapse user in `invite`, and a rejected Synapse invite showing under `rooms.leave`."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixClient, eventually

pytestmark = pytest.mark.synapse

JsonDict = dict[str, Any]


async def test_create_room_inviting_a_synapse_user(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await rv_bob.create_room(
        preset="trusted_private_chat",
        invite=[syn_alice.user_id],
        is_direct=True,
        room_version="11",
    )

    async def invite_event() -> JsonDict | None:
        out = await syn_alice.sync()
        room = out.get("rooms", {}).get("invite", {}).get(room_id)
        if room is None:
            return None
        for event in room["invite_state"]["events"]:
            if event["type"] == "m.room.member" and (
                event["state_key"] == syn_alice.user_id
            ):
                return dict(event)
        return None

    event = await eventually(invite_event, what="the invite on synapse")
    assert event is not None
    assert event["content"]["is_direct"] is True
    await syn_alice.join(room_id)

    async def joined() -> bool:
        return (await rv_bob.members(room_id)).get(syn_alice.user_id) == "join"

    await eventually(joined, what="alice's join on ranvier")
    levels = await rv_bob.state_event(room_id, "m.room.power_levels")
    assert levels is not None
    assert levels["users"][syn_alice.user_id] == 100


async def test_rejected_synapse_invite_shows_under_leave(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await syn_alice.create_room(preset="private_chat")
    await syn_alice.invite(room_id, rv_bob.user_id)

    async def invited() -> bool:
        out = await rv_bob.sync()
        return room_id in out.get("rooms", {}).get("invite", {})

    await eventually(invited, what="the invite on ranvier")
    await rv_bob.leave(room_id)

    async def left() -> list[JsonDict]:
        out = await rv_bob.sync()
        room = out.get("rooms", {}).get("leave", {}).get(room_id)
        if room is None:
            return []
        return [
            e
            for e in room["timeline"]["events"]
            if e["type"] == "m.room.member" and e["state_key"] == rv_bob.user_id
        ]

    [event] = await eventually(left, what="the room under rooms.leave")
    assert event["content"]["membership"] == "leave"
    assert event["sender"] == rv_bob.user_id

    async def rejected() -> bool:
        return (await syn_alice.members(room_id)).get(rv_bob.user_id) == "leave"

    await eventually(rejected, what="the rejection on synapse")


async def test_new_ranvier_login_reaches_synapse_device_lists(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await rv_bob.create_room(
        preset="private_chat", invite=[syn_alice.user_id], room_version="11"
    )

    async def invited() -> bool:
        out = await syn_alice.sync()
        return room_id in out.get("rooms", {}).get("invite", {})

    await eventually(invited, what="the invite on synapse")
    await syn_alice.join(room_id)

    async def joined() -> bool:
        return (await rv_bob.members(room_id)).get(syn_alice.user_id) == "join"

    await eventually(joined, what="alice's join on ranvier")
    await syn_alice.sync()
    # Synapse learns bob's devices once (it shares a room now).
    first = await syn_alice.ok(
        "POST", "/keys/query", {"device_keys": {rv_bob.user_id: []}}
    )
    before = set(first["device_keys"].get(rv_bob.user_id, {}))

    status, login = await rv_bob.call(
        "POST",
        "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "interop-pw-1",
            "initial_device_display_name": "Laptop",
        },
        token=False,
    )
    assert status == 200, login

    async def changed() -> bool:
        out = await syn_alice.sync()
        return rv_bob.user_id in out.get("device_lists", {}).get("changed", [])

    await eventually(changed, what="bob in device_lists.changed on synapse")
    assert login["device_id"] not in before


async def test_erased_ranvier_users_messages_reach_synapse_redacted(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
    http: aiohttp.ClientSession,
) -> None:
    carol = MatrixClient(http, ranvier.client_url)
    await carol.register("carol")
    room_id = await rv_bob.create_room(preset="public_chat", room_version="11")
    await carol.join(room_id)
    secret = await carol.send(room_id, "carol's secret")
    await rv_bob.send(room_id, "bob stays")
    status, first = await carol.call("POST", "/account/deactivate", {"erase": True})
    assert status == 401, first
    body: JsonDict = {
        "erase": True,
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "carol"},
            "password": "interop-pw-1",
            "session": first["session"],
        },
    }
    await carol.ok("POST", "/account/deactivate", body)

    await syn_alice.join(room_id, via=[ranvier.server_name])

    async def served() -> JsonDict | None:
        for event in await syn_alice.messages(room_id, limit=50):
            if event["event_id"] == secret:
                return event
        return None

    event = await eventually(served, what="carol's message backfilled by synapse")
    assert event is not None
    assert event["content"] == {}
    assert event["sender"] == carol.user_id
