"""Issue #11 item 1 (SyTest 50federation/36state "Should not be able to take over the
room by pretending there is no PL event"), for every room-version family.

The peer sends E -> D -> C -> (an event nobody has). Ranvier asks for the events
between its tip and E (gets D), then for the state at C: the peer claims it is only
the create event, mallory's join and a power-levels event X it made up (mallory 100,
alice 0). X cites the real power levels, under which mallory has power 0, so X is
rejected - and a rejected event must never become state, whichever way it arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from ranvier.core.events.event import Event
from tests.federation.hostile.scenario import (
    MALLORY,
    PL_KEY,
    Attack,
    assert_room_intact,
    attacked_room,
    rejected_ids,
)

JsonDict = dict[str, object]
# One room version per state-resolution / event-format family.
FAMILIES = ["1", "3", "10", "11", "12"]


def lie_about_state_at(
    a: Attack, at: Event, state: list[str], chain: list[str]
) -> None:
    async def state_ids(request: web.Request) -> JsonDict:
        assert request.query["event_id"] == at.event_id
        return {"pdu_ids": state, "auth_chain_ids": chain}

    a.peer.script("state_ids", state_ids)


def gap_attack(a: Attack, *, cite_real_pl: bool) -> tuple[Event, Event]:
    """Script the attack; return (X, E)."""
    room, peer = a.room, a.peer
    create = room.state[("m.room.create", "")]
    join = room.state[("m.room.member", MALLORY)]
    real_pl = room.state[PL_KEY]
    auth = [create, real_pl, join] if cite_real_pl else [create, join]
    if a.rv.room_id_from_create_event:
        auth = [e for e in auth if e != create]
    x = peer.forge(
        room, MALLORY, "m.room.power_levels",
        {"users": {MALLORY: 100, a.alice.user_id: 0}},
        state_key="", prev=[a.nowhere()], auth=auth, depth=0,
    )  # fmt: skip
    c = peer.forge(
        room, MALLORY, "m.room.message", {"body": "hehehe...", "msgtype": "m.text"},
        prev=[a.nowhere()], depth=10,
    )  # fmt: skip
    d = peer.forge(
        room, MALLORY, "m.room.message", {"body": "totes legit", "msgtype": "m.text"},
        prev=[c.event_id], depth=11,
    )  # fmt: skip
    e = peer.forge(
        room, MALLORY, "m.room.message", {"body": "nothing to see", "msgtype": "m.text"},
        prev=[d.event_id], depth=12,
    )  # fmt: skip
    peer.answer("get_missing_events", {"events": [d.data]})
    lie_about_state_at(a, c, [create, join, x.event_id], [create, join])
    return x, e


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_rejected_power_levels_from_state_ids_never_become_state(
    tmp_path: Path, room_version: str, engine: str
) -> None:
    async with attacked_room(tmp_path, room_version=room_version, engine=engine) as a:
        real_pl = a.room.state[PL_KEY]
        x, e = gap_attack(a, cite_real_pl=True)
        await a.send([e])
        assert a.peer.hits["state_ids"] == 1
        assert x.event_id in await rejected_ids(a)
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={x.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_state_without_power_levels_does_not_reset_them(
    tmp_path: Path, room_version: str, engine: str
) -> None:
    """The same lie with an X that cites no power levels (so it passes its own auth
    events): the state at C then has no real power levels at all."""
    async with attacked_room(tmp_path, room_version=room_version, engine=engine) as a:
        real_pl = a.room.state[PL_KEY]
        x, e = gap_attack(a, cite_real_pl=False)
        await a.send([e])
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={x.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )
