"""The pipeline's federation entry points on both engines: outliers, out-of-band
memberships (remote invites) and events whose state before is supplied."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import pytest

from ranvier.app.rooms import Rooms, build_rooms
from ranvier.config.load import load_config
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.event import Event
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.services.rooms.creation import CreateRoomRequest
from ranvier.storage.database import Database
from ranvier.util.clock import FakeClock
from tests.helpers.homeserver import write_test_config

ALICE = "@alice:localhost"
CAROL = "@carol:localhost"
KEY = SigningKey(b"\x07" * 32, "p1")


class Profiles:
    async def get_member_profiles(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        return {}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[str, ...]]] = []

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        self.seen.append((event.event_id, tuple(extra_users)))


@pytest.fixture
async def rooms(database: Database, tmp_path: Path) -> tuple[Rooms, Recorder]:
    config = load_config(write_test_config(tmp_path), dict(os.environ))
    recorder = Recorder()
    built = await build_rooms(
        config, database, FakeClock(), signing_key=KEY, profiles=Profiles(),
        notifier=recorder,
    )  # fmt: skip
    return built, recorder


async def _current(rooms: Rooms, room_id: str) -> dict[tuple[str, str], Event]:
    state = await rooms.state_reader.get_current_state(room_id)
    return {k: s.event for k, s in state.items()}


def _build(
    rooms: Rooms, room_id: str, state: dict[tuple[str, str], Event],
    prev: list[Event], **fields: Any,
) -> Event:  # fmt: skip
    rv = next(iter(state.values())).room_version
    auth = [state[k] for k in [("m.room.power_levels", ""), ("m.room.member", ALICE)]]
    pdu = build_unsigned_pdu(
        rv, room_id=room_id, prev_events=prev, auth_events=auth,
        origin_server_ts=1, **fields,
    )  # fmt: skip
    return rooms.sender.builder.finalize(pdu, rv)


async def test_outliers_and_supplied_state(rooms: tuple[Rooms, Recorder]) -> None:
    built, recorder = rooms
    room_id, _ = await built.creation.create_room(ALICE, CreateRoomRequest())
    state = await _current(built, room_id)
    (tip_id, _), *_ = await built.events.get_forward_extremities(room_id)
    tip = (await built.events.get_events([tip_id]))[tip_id].event
    # An event we never saw, stored as an outlier: no place in the timeline.
    hidden = _build(built, room_id, state, [tip], event_type="m.room.topic",
                    sender=ALICE, content={"topic": "t"}, state_key="")  # fmt: skip
    rv = await built.sender.room_version(room_id)
    async with built.pipeline.room_session(room_id, rv) as session:
        assert await session.add_outlier(hidden)
        await session.commit()
    stored = await built.events.get_event(hidden.event_id)
    assert stored is not None
    assert stored.outlier
    assert not stored.is_servable
    assert hidden.event_id not in [e for e, _ in recorder.seen]
    assert await built.state.get_state_groups_for_events([hidden.event_id]) == {}
    # A child of the outlier: its state before is supplied (as federation computes it).
    supplied = {k: e.event_id for k, e in state.items()}
    supplied[("m.room.topic", "")] = hidden.event_id
    child = _build(built, room_id, state, [hidden], event_type="m.room.message",
                   sender=ALICE, content={"body": "hi"})  # fmt: skip
    async with built.pipeline.room_session(room_id, rv) as session:
        await session.add_event(child, local=False, state_before=supplied)
        (persisted,) = await session.commit()
    assert persisted.rejected_reason is None
    before = await built.state.get_state_ids_at_event(child.event_id, before=True)
    assert before == supplied
    extremities = {e for e, _ in await built.events.get_forward_extremities(room_id)}
    assert extremities == {tip_id, child.event_id}


async def test_out_of_band_invite_is_a_membership(
    rooms: tuple[Rooms, Recorder],
) -> None:
    built, recorder = rooms
    rv = await built.sender.room_version(
        (await built.creation.create_room(ALICE, CreateRoomRequest()))[0]
    )
    remote_room = "!elsewhere:remote.test"
    pdu = build_unsigned_pdu(
        rv, event_type="m.room.member", sender="@bob:remote.test",
        content={"membership": "invite"}, room_id=remote_room, origin_server_ts=1,
        prev_events=[], auth_events=[], state_key=CAROL,
    )  # fmt: skip
    pdu["unsigned"] = {"invite_room_state": [{"type": "m.room.name"}]}
    invite = built.sender.builder.finalize(pdu, rv)
    async with built.pipeline.room_session(remote_room, rv) as session:
        session.add_out_of_band_membership(invite)
        await session.commit()
    row = await built.rooms.get_membership(remote_room, CAROL)
    assert row is not None
    assert (row.membership, row.event_id) == ("invite", invite.event_id)
    stored = await built.events.get_event(invite.event_id)
    assert stored is not None
    assert stored.outlier
    assert stored.event.unsigned["invite_room_state"] == [{"type": "m.room.name"}]
    assert invite.event_id in [e for e, _ in recorder.seen]
    assert await built.events.get_forward_extremities(remote_room) == []
    assert await built.state.get_current_state_ids(remote_room) == {}


async def test_supplied_state_never_holds_rejected_or_foreign_events(
    rooms: tuple[Rooms, Recorder],
) -> None:
    """A supplied state (federation's state at a gap) naming an event rejected earlier
    in the same session, an event of another room, or an event under another key:
    those entries are dropped, so no state group ever holds them."""
    built, _ = rooms
    room_id, _ = await built.creation.create_room(ALICE, CreateRoomRequest())
    other_id, _ = await built.creation.create_room(ALICE, CreateRoomRequest())
    state = await _current(built, room_id)
    other = await _current(built, other_id)
    (tip_id, _), *_ = await built.events.get_forward_extremities(room_id)
    tip = (await built.events.get_events([tip_id]))[tip_id].event
    rv = await built.sender.room_version(room_id)
    # Carol was never invited to this private room: her join is rejected.
    pdu = build_unsigned_pdu(
        rv, event_type="m.room.member", sender=CAROL, content={"membership": "join"},
        room_id=room_id, origin_server_ts=1, prev_events=[tip], state_key=CAROL,
        auth_events=[state[("m.room.create", "")], state[("m.room.power_levels", "")],
                     state[("m.room.join_rules", "")]],
    )  # fmt: skip
    carol = built.sender.builder.finalize(pdu, rv)
    supplied = {k: e.event_id for k, e in state.items()}
    supplied[("m.room.member", CAROL)] = carol.event_id
    supplied[("m.room.power_levels", "")] = other[("m.room.power_levels", "")].event_id
    supplied[("m.room.topic", "")] = state[("m.room.join_rules", "")].event_id
    child = _build(built, room_id, state, [tip], event_type="m.room.message",
                   sender=ALICE, content={"body": "hi"})  # fmt: skip
    async with built.pipeline.room_session(room_id, rv) as session:
        await session.add_event(carol, local=False)
        await session.add_event(child, local=False, state_before=supplied)
        rejected, accepted = await session.commit()
    assert rejected.rejected_reason is not None
    assert accepted.rejected_reason is None
    before = await built.state.get_state_ids_at_event(child.event_id, before=True)
    assert before is not None
    expected = {k: e.event_id for k, e in state.items()}
    del expected[("m.room.power_levels", "")]
    assert before == expected
