"""Joining a room the hostile peer hosts: its `send_join` answer is the state Ranvier
starts from, so every lie in it must be dropped before it becomes a state group."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.core.events.event import StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.hostile.forge import forge
from tests.federation.hostile.peer import HostilePeer
from tests.federation.hostile.scenario import (
    EVIL,
    HS,
    MALLORY,
    PL_KEY,
    Attack,
    JsonDict,
    assert_room_intact,
    current_state,
    running_server,
    serve_peer,
)
from tests.helpers.federation import event_of

FAMILIES = ["1", "3", "10", "11", "12"]


async def _join(a: Attack) -> None:
    q = urllib.parse.quote(a.room_id)
    await a.alice.ok("POST", f"/join/{q}?server_name={EVIL}", {})


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_join_with_lying_state(tmp_path: Path, room_version: str) -> None:
    """The answer's state adds: an event failing its own auth events (a second create
    event's member), a member event "from" alice with a forged signature, and another
    room's power-levels event filed under this room's key."""
    rv = KNOWN_ROOM_VERSIONS[room_version]
    async with (
        running_server(tmp_path, "sqlite") as hs,
        serve_peer({HS: hs}, HostilePeer(EVIL)) as peer,
    ):
        room = peer.host_room(rv, MALLORY)
        alice = await hs.user("alice")
        a = Attack(hs, peer, alice, room.room_id, room)
        real_pl = room.state[PL_KEY]
        # Not authorised by its own auth events (cites no create event, no join rules).
        stray = forge(
            rv, server=EVIL, key=peer.key, room_id=room.room_id,
            sender="@stray:evil.test", etype="m.room.member",
            content={"membership": "join"}, state_key="@stray:evil.test",
            prev=list(room.extremities), auth=[], depth=5, ts=1,
        )  # fmt: skip
        # "alice banned herself", signed with the peer's key under hs1.test's name.
        forged_ban = forge(
            rv, server=HS, key=peer.key, room_id=room.room_id,
            sender=alice.user_id, etype="m.room.member",
            content={"membership": "ban"}, state_key="@victim:evil.test",
            prev=list(room.extremities), auth=[], depth=5, ts=1,
        )  # fmt: skip
        other = await alice.create_room(preset="public_chat", room_version=room_version)
        q = urllib.parse.quote(other)
        listed: list[JsonDict] = await alice.ok("GET", f"/rooms/{q}/state")  # type: ignore[assignment]
        foreign = next(
            e["event_id"] for e in listed if e["type"] == "m.room.power_levels"
        )
        await peer.join(hs, other, MALLORY)
        foreign_pl = (await peer.fetch_event(hs, foreign, rv)).data

        async def lying_send_join(request: web.Request) -> JsonDict:
            join = event_of(await request.json(), rv)
            answer = peer.join_answer(room, join)
            answer["state"] += [stray.data, forged_ban.data, foreign_pl]
            return answer

        peer.script("send_join", lying_send_join)
        await _join(a)
        current = await current_state(a)
        assert current[("m.room.member", alice.user_id)]
        assert ("m.room.member", "@stray:evil.test") not in current
        assert ("m.room.member", "@victim:evil.test") not in current
        assert foreign not in current.values()
        expected: dict[StateKey, str] = {PL_KEY: real_pl}
        powers = {alice.user_id: 0}
        if not rv.privileged_creators:
            powers[MALLORY] = 100
        await assert_room_intact(a, expected=expected, powers=powers)
