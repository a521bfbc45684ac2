"""The ingest pipeline on both engines: forks resolved by state resolution, rejected and
soft-failed events, per-room serialisation, state-group compaction, notifications."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ranvier.app.rooms import Rooms, build_rooms
from ranvier.config.load import load_config
from ranvier.core.auth import auth_events_selection
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.event import Event
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.services.rooms.creation import CreateRoomRequest
from ranvier.services.rooms.reading import Reader
from ranvier.storage.database import Database
from ranvier.util.clock import FakeClock
from tests.helpers.homeserver import write_test_config

ALICE = "@alice:localhost"
BOB = "@bob:localhost"
KEY = SigningKey(b"\x05" * 32, "p1")


class Profiles:
    async def get_member_profiles(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        return {u: {"displayname": u[1:].split(":")[0]} for u in user_ids}


class RecordingNotifier:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, tuple[str, ...]]] = []

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        self.seen.append((event.event_id, stream_ordering, tuple(extra_users)))


@pytest.fixture
async def rooms_and_notifier(
    database: Database, tmp_path: Path
) -> tuple[Rooms, RecordingNotifier, FakeClock]:
    config = load_config(write_test_config(tmp_path), dict(os.environ))
    notifier = RecordingNotifier()
    clock = FakeClock()
    rooms = await build_rooms(
        config, database, clock, signing_key=KEY, profiles=Profiles(), notifier=notifier
    )
    return rooms, notifier, clock


async def _remote_event(
    rooms: Rooms,
    room_id: str,
    prev: Sequence[Event],
    *,
    etype: str,
    sender: str,
    content: dict[str, Any],
    state_key: str | None = None,
    ts: int,
) -> Event:
    """An event built on `prev` (not the room's tip), with auth events from current state."""
    rv = await rooms.sender.room_version(room_id)
    fields: dict[str, Any] = {
        "event_type": etype,
        "sender": sender,
        "content": content,
        "room_id": room_id,
        "origin_server_ts": ts,
        "state_key": state_key,
    }
    draft = build_unsigned_pdu(rv, prev_events=[], auth_events=[], **fields)
    keys = auth_events_selection(Event(draft, "$draft", rv))
    auth = await rooms.state_reader.get_current_state_events(room_id, keys)
    pdu = build_unsigned_pdu(
        rv, prev_events=prev, auth_events=list(auth.values()), **fields
    )
    return rooms.sender.builder.finalize(pdu, rv)


async def _ingest(rooms: Rooms, room_id: str, *events: Event) -> None:
    rv = await rooms.sender.room_version(room_id)
    async with rooms.pipeline.room_session(room_id, rv) as session:
        for ev in events:
            await session.add_event(ev, local=False)
        await session.commit()


async def _tip_event(rooms: Rooms, room_id: str) -> Event:
    (eid, _), *_ = await rooms.events.get_forward_extremities(room_id)
    stored = await rooms.events.get_event(eid)
    assert stored is not None
    return stored.event


async def test_forks_are_resolved_and_merged(
    rooms_and_notifier: tuple[Rooms, RecordingNotifier, FakeClock],
) -> None:
    rooms, _, clock = rooms_and_notifier
    room_id, _ = await rooms.creation.create_room(ALICE, CreateRoomRequest(name="base"))
    base = await _tip_event(rooms, room_id)
    now = clock.time_msec()
    left = await _remote_event(rooms, room_id, [base], etype="m.room.name", sender=ALICE,
                               content={"name": "left"}, state_key="", ts=now + 10)  # fmt: skip
    right = await _remote_event(rooms, room_id, [base], etype="m.room.name", sender=ALICE,
                                content={"name": "right"}, state_key="", ts=now + 20)  # fmt: skip
    await _ingest(rooms, room_id, left, right)
    extremities = {e for e, _ in await rooms.events.get_forward_extremities(room_id)}
    assert extremities == {left.event_id, right.event_id}
    # v2 state resolution orders equal-power conflicts by timestamp: the later one wins.
    current = await rooms.state_reader.get_current_content(room_id, "m.room.name")
    assert current == {"name": "right"}
    # A local event merges the fork: it cites both extremities.
    merged_id = await rooms.messages.send_message(
        user_id=ALICE, device_id="D", room_id=room_id, event_type="m.room.message",
        content={"body": "merge"}, txn_id="m",
    )  # fmt: skip
    merged = await rooms.events.get_event(merged_id)
    assert merged is not None
    assert set(merged.event.prev_event_ids) == extremities
    assert await rooms.events.get_forward_extremities(room_id) == [
        (merged_id, merged.depth)
    ]
    state = await rooms.state.get_state_ids_at_event(merged_id, before=True)
    assert state is not None
    assert state[("m.room.name", "")] == right.event_id


async def test_remote_events_rejected_and_soft_failed(
    rooms_and_notifier: tuple[Rooms, RecordingNotifier, FakeClock],
) -> None:
    rooms, notifier, clock = rooms_and_notifier
    room_id, _ = await rooms.creation.create_room(
        ALICE, CreateRoomRequest(is_public=False, room_version="10")
    )
    now = clock.time_msec()
    # Bob is not in the room: his message fails auth and is stored as rejected.
    base = await _tip_event(rooms, room_id)
    intruder = await _remote_event(rooms, room_id, [base], etype="m.room.message",
                                   sender=BOB, content={"body": "x"}, ts=now)  # fmt: skip
    await _ingest(rooms, room_id, intruder)
    stored = await rooms.events.get_event(intruder.event_id)
    assert stored is not None
    assert stored.rejected_reason is not None
    assert not stored.is_servable
    assert intruder.event_id not in [e for e, _, _ in notifier.seen]
    assert await rooms.events.get_forward_extremities(room_id) == [
        (base.event_id, base.depth)
    ]

    # Bob joins (invited first); then is banned; a message citing the pre-ban state
    # passes auth against the state before it but not against the current state.
    await rooms.membership.invite(ALICE, room_id, BOB)
    await rooms.membership.join(BOB, room_id)
    joined_tip = await _tip_event(rooms, room_id)
    await rooms.membership.ban(ALICE, room_id, BOB, "spam")
    late = await _remote_event(rooms, room_id, [joined_tip], etype="m.room.message",
                               sender=BOB, content={"body": "late"}, ts=now + 5)  # fmt: skip
    # Auth events must come from the state before it: bob's join, not his ban.
    rv = await rooms.sender.room_version(room_id)
    state_before = await rooms.state_reader.get_state_at(joined_tip.event_id)
    keys = auth_events_selection(late)
    auth = [state_before[k].event for k in keys if k in state_before]
    pdu = build_unsigned_pdu(
        rv, event_type="m.room.message", sender=BOB, content={"body": "late"},
        room_id=room_id, origin_server_ts=now + 5, prev_events=[joined_tip],
        auth_events=auth,
    )  # fmt: skip
    late = rooms.sender.builder.finalize(pdu, rv)
    await _ingest(rooms, room_id, late)
    stored = await rooms.events.get_event(late.event_id)
    assert stored is not None
    assert stored.rejected_reason is None
    assert stored.soft_failed
    page = await rooms.reading.get_messages(
        Reader(ALICE, "D"), room_id, from_token=None, to_token=None, direction="b",
        limit=50, flt=None,
    )  # fmt: skip
    assert late.event_id not in [e["event_id"] for e in page["chunk"]]
    ban = await rooms.state_reader.get_current_content(room_id, "m.room.member", BOB)
    assert ban is not None
    assert ban["membership"] == "ban"


async def test_one_room_is_serial_rooms_are_concurrent(
    rooms_and_notifier: tuple[Rooms, RecordingNotifier, FakeClock],
) -> None:
    rooms, notifier, _ = rooms_and_notifier
    room_a, _ = await rooms.creation.create_room(ALICE, CreateRoomRequest())
    room_b, _ = await rooms.creation.create_room(ALICE, CreateRoomRequest())

    async def send(room_id: str, i: int) -> str:
        return await rooms.messages.send_message(
            user_id=ALICE, device_id="D", room_id=room_id, event_type="m.room.message",
            content={"body": str(i)}, txn_id=f"{room_id}-{i}",
        )  # fmt: skip

    ids = await asyncio.gather(
        *(send(r, i) for i in range(10) for r in (room_a, room_b))
    )
    assert len(set(ids)) == 20
    for room_id in (room_a, room_b):
        extremities = await rooms.events.get_forward_extremities(room_id)
        assert len(extremities) == 1
        page = await rooms.reading.get_messages(
            Reader(ALICE, "D"), room_id, from_token=None, to_token=None, direction="f",
            limit=100, flt=None,
        )  # fmt: skip
        chunk = page["chunk"]
        # A linear chain: every event cites the one before it.
        for prev, ev in itertools.pairwise(chunk):
            stored = await rooms.events.get_event(ev["event_id"])
            assert stored is not None
            assert stored.event.prev_event_ids == [prev["event_id"]]
    positions = [pos for _, pos, _ in notifier.seen]
    assert sorted(positions) == positions or len(set(positions)) == len(positions)
    assert rooms.events.get_current_position() == max(positions)


async def test_state_groups_are_compacted(
    rooms_and_notifier: tuple[Rooms, RecordingNotifier, FakeClock],
) -> None:
    rooms, _, _ = rooms_and_notifier
    room_id, _ = await rooms.creation.create_room(ALICE, CreateRoomRequest())
    limit = rooms.state.max_chain_length
    last = ""
    for i in range(limit + 5):
        last = await rooms.messages.send_state(
            user_id=ALICE, room_id=room_id, event_type="m.room.topic", state_key="",
            content={"topic": str(i)},
        )  # fmt: skip
    groups = await rooms.state.get_state_groups_for_events([last])
    group = await rooms.state.get_state_group(groups[last].after)
    assert group is not None
    assert group.chain_length <= limit
    assert group.state[("m.room.topic", "")] == last
    # Non-state events share the state group of the state before them.
    msg = await rooms.messages.send_message(
        user_id=ALICE, device_id=None, room_id=room_id, event_type="m.room.message",
        content={"body": "x"}, txn_id="x",
    )  # fmt: skip
    msg_groups = await rooms.state.get_state_groups_for_events([msg])
    assert msg_groups[msg].before == msg_groups[msg].after == groups[last].after
