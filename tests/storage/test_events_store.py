"""Event, state and room stores on both engines (house rule 7).

Events are real signed PDUs (built with the core builder); the batches are assembled by
hand so each store function is exercised directly, without the ingest pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.event import Event
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.core.filters import parse_room_event_filter
from ranvier.core.room_tokens import RoomToken
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    CurrentStateDelta,
    EventToPersist,
    MembershipChange,
    NewRoom,
    NewStateGroup,
    PersistBatch,
)
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.events_persist import OutlierGoneError
from ranvier.storage.stores.rooms import RoomStore
from ranvier.storage.stores.state import StateStore
from ranvier.storage.txn import Txn

RV = KNOWN_ROOM_VERSIONS["10"]
KEY = SigningKey(b"\x07" * 32, "t1")
ALICE = "@alice:test"
ROOM = "!room:test"


def make_event(
    etype: str,
    prev: Sequence[Event],
    *,
    state_key: str | None = None,
    content: dict[str, Any] | None = None,
    sender: str = ALICE,
    ts: int = 1000,
    redacts: str | None = None,
) -> Event:
    pdu = build_unsigned_pdu(
        RV,
        event_type=etype,
        sender=sender,
        content=content or {},
        room_id=ROOM,
        origin_server_ts=ts,
        prev_events=prev,
        auth_events=[],
        state_key=state_key,
        redacts=redacts,
    )
    return finalize_local_event(pdu, RV, "test", KEY)


class Chain:
    """Appends events to one linear room, writing state groups as the pipeline would."""

    def __init__(self, events: EventStore, state: StateStore) -> None:
        self.events = events
        self.state = state
        self.last: Event | None = None
        self.group: int | None = None
        self.current: dict[tuple[str, str], str] = {}
        self.chain_length = 0

    async def add(
        self,
        etype: str,
        *,
        state_key: str | None = None,
        new_room: bool = False,
        **kw: Any,
    ) -> tuple[Event, int]:
        ev = make_event(
            etype, [self.last] if self.last else [], state_key=state_key, **kw
        )
        pos = self.events.stream_ids.allocate()
        groups: list[NewStateGroup] = []
        before = self.group
        after = before
        deltas: list[CurrentStateDelta] = []
        if state_key is not None:
            after = self.state.allocate_group_id()
            key = (etype, state_key)
            snapshot = (
                before is None or self.chain_length >= self.state.max_chain_length
            )
            previous = self.current.get(key)
            self.current[key] = ev.event_id
            if snapshot:
                groups.append(NewStateGroup(after, ROOM, None, 0, dict(self.current)))
                self.chain_length = 0
            else:
                self.chain_length += 1
                groups.append(
                    NewStateGroup(
                        after, ROOM, before, self.chain_length, {key: ev.event_id}
                    )
                )
            members = []
            if etype == "m.room.member":
                members.append(
                    MembershipChange(
                        ROOM,
                        state_key,
                        ev.event_id,
                        str(ev.membership),
                        ev.sender,
                        None,
                    )
                )
            deltas.append(
                CurrentStateDelta(
                    ROOM, pos, {key: ev.event_id}, {key: previous}, members
                )
            )
        assert after is not None
        item = EventToPersist(
            event=ev,
            stream_ordering=pos,
            received_ts=ev.origin_server_ts,
            state_group_before=before,
            state_group_after=after,
            new_state_groups=groups,
            replaces_state=None,
            applies_redaction_to=kw.get("redacts"),
        )
        batch = PersistBatch(
            room_id=ROOM,
            events=[item],
            forward_extremities=[ev.event_id],
            current_state=deltas,
            new_room=NewRoom(ROOM, RV.identifier, ALICE, 0) if new_room else None,
        )
        try:
            await self.events.persist_batch(batch)
        finally:
            self.events.stream_ids.complete(pos)
        self.last = ev
        self.group = after
        return ev, pos


@pytest.fixture
async def stores(database: Database) -> tuple[EventStore, StateStore, RoomStore]:
    return (
        await EventStore.open(database),
        await StateStore.open(database, max_chain_length=3),
        RoomStore(database),
    )


async def _room(stores: tuple[EventStore, StateStore, RoomStore]) -> Chain:
    events, state, _ = stores
    chain = Chain(events, state)
    await chain.add(
        "m.room.create", state_key="", new_room=True, content={"creator": ALICE}
    )
    await chain.add("m.room.member", state_key=ALICE, content={"membership": "join"})
    return chain


async def test_events_are_stored_once_and_fetched(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, rooms = stores
    chain = await _room(stores)
    msg, pos = await chain.add(
        "m.room.message", content={"body": "hi", "url": "mxc://a/b"}
    )
    stored = await events.get_event(msg.event_id)
    assert stored is not None
    assert stored.event.data == msg.data
    assert stored.stream_ordering == pos
    assert stored.is_servable
    assert events.get_current_position() == pos
    room = await rooms.get_room(ROOM)
    assert room is not None
    assert room.room_version == "10"
    assert not room.is_public
    assert (await rooms.get_room_version(ROOM)) is RV
    assert await events.get_forward_extremities(ROOM) == [(msg.event_id, msg.depth)]
    assert (
        await events.have_children([chain.last.event_id if chain.last else ""]) == set()
    )
    assert await events.get_event("$missing") is None


async def test_state_groups_use_bounded_delta_chains(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, state, _ = stores
    chain = await _room(stores)
    names = []
    for i in range(8):
        ev, _ = await chain.add("m.room.name", state_key="", content={"name": f"n{i}"})
        names.append(ev)
        assert chain.group is not None
        group = await StateStore(state._db, 0).get_state_group(
            chain.group
        )  # uncached read
        assert group is not None
        assert group.state[("m.room.name", "")] == ev.event_id
        assert group.chain_length <= 3
        assert len(group.state) == 3
    # State at an event: before and after.
    after = await state.get_state_ids_at_event(names[4].event_id)
    before = await state.get_state_ids_at_event(names[4].event_id, before=True)
    assert after is not None
    assert before is not None
    assert after[("m.room.name", "")] == names[4].event_id
    assert before[("m.room.name", "")] == names[3].event_id
    current = await state.get_current_state_ids(ROOM)
    assert current[("m.room.name", "")] == names[-1].event_id
    assert len(current) == 3
    deltas = await state.get_current_state_deltas(
        0, events.get_current_position(), [ROOM]
    )
    assert [d.event_id for d in deltas][-1] == names[-1].event_id
    assert deltas[-1].prev_event_id == names[-2].event_id


async def test_timeline_pagination_and_stream_reads(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, _ = stores
    chain = await _room(stores)
    start = events.get_current_position()
    sent = [
        (await chain.add("m.room.message", content={"body": str(i)}, sender=s))[0]
        for i, s in enumerate([ALICE, "@bob:test", ALICE, "@bob:test", ALICE])
    ]
    end = events.get_current_position()
    page, limited = await events.get_room_events_between(ROOM, start, end, 3)
    assert [e.event_id for e in page] == [e.event_id for e in sent[2:]]
    assert limited
    assert await events.get_rooms_with_events_between(
        [ROOM, "!other:test"], start, end
    ) == {ROOM}
    tip = await events.get_topological_token(ROOM, end)
    back = await events.paginate_room(ROOM, tip, None, "b", 2)
    assert [e.event_id for e in back.events] == [sent[4].event_id, sent[3].event_id]
    assert back.next_token is not None
    more = await events.paginate_room(ROOM, back.next_token, None, "b", 2)
    assert [e.event_id for e in more.events] == [sent[2].event_id, sent[1].event_id]
    fwd = await events.paginate_room(ROOM, RoomToken(0, 0), None, "f", 100)
    assert fwd.next_token is None
    assert [e.event_id for e in fwd.events][-5:] == [e.event_id for e in sent]
    flt = parse_room_event_filter({"senders": ["@bob:test"], "types": ["m.room.*"]})
    only_bob = await events.paginate_room(ROOM, tip, None, "b", 10, flt)
    assert [e.event_id for e in only_bob.events] == [sent[3].event_id, sent[1].event_id]
    s1 = await events.get_event(sent[1].event_id)
    assert s1 is not None
    to = RoomToken(stream=s1.stream_ordering, depth=s1.depth)
    bounded = await events.paginate_room(ROOM, tip, to, "b", 100)
    assert [e.event_id for e in bounded.events] == [e.event_id for e in sent[4:1:-1]]


async def test_redaction_marks_its_target(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, _ = stores
    chain = await _room(stores)
    msg, _ = await chain.add("m.room.message", content={"body": "secret"})
    assert (await events.get_event(msg.event_id)) is not None  # now cached
    red, _ = await chain.add("m.room.redaction", redacts=msg.event_id)
    stored = await events.get_event(msg.event_id)
    assert stored is not None
    assert stored.redacted_by == red.event_id


async def test_memberships_and_aliases(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, rooms = stores
    chain = await _room(stores)
    _, invite_pos = await chain.add(
        "m.room.member", state_key="@bob:test", content={"membership": "invite"}
    )
    _, join_pos = await chain.add(
        "m.room.member",
        state_key="@bob:test",
        content={"membership": "join"},
        sender="@bob:test",
    )
    m = await rooms.get_membership(ROOM, "@bob:test")
    assert m is not None
    assert m.membership == "join"
    assert m.stream_ordering == join_pos
    assert await rooms.get_joined_user_ids(ROOM) == [ALICE, "@bob:test"]
    changes = await rooms.get_membership_changes_for_user("@bob:test", 0, join_pos)
    assert [(c.membership, c.stream_ordering) for c in changes] == [
        ("invite", invite_pos),
        ("join", join_pos),
    ]
    assert await rooms.get_membership_changes_for_user(
        "@bob:test", invite_pos, join_pos
    )
    assert await rooms.has_ever_joined(ROOM, "@bob:test")
    at = await rooms.get_membership_at(ROOM, "@bob:test", invite_pos)
    assert at is not None
    assert at.membership == "invite"
    assert [r.room_id for r in await rooms.get_rooms_for_user("@bob:test")] == [ROOM]
    await chain.add(
        "m.room.member",
        state_key="@bob:test",
        content={"membership": "leave"},
        sender="@bob:test",
    )
    await rooms.forget_room(ROOM, "@bob:test")
    assert await rooms.get_rooms_for_user("@bob:test", ("leave",)) == []
    assert (
        len(
            await rooms.get_rooms_for_user(
                "@bob:test", ("leave",), include_forgotten=True
            )
        )
        == 1
    )
    assert await rooms.get_joined_member_counts([ROOM]) == {ROOM: 1}

    assert await rooms.create_alias("#a:test", ROOM, ALICE, 5)
    assert not await rooms.create_alias("#a:test", ROOM, ALICE, 6)
    assert await rooms.get_alias("#a:test") == (ROOM, ALICE)
    assert await rooms.get_aliases_for_room(ROOM) == ["#a:test"]
    assert await rooms.delete_alias("#a:test")
    assert not await rooms.delete_alias("#a:test")
    await rooms.set_room_is_public(ROOM, True)
    assert await rooms.get_public_rooms() == [(ROOM, 1)]
    assert events.get_current_position() > 0


async def test_txn_ids_and_timestamps(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, _ = stores
    chain = await _room(stores)
    ev = make_event("m.room.message", [chain.last] if chain.last else [], ts=5000)
    pos = events.stream_ids.allocate()
    try:
        await events.persist_batch(
            PersistBatch(
                room_id=ROOM,
                events=[
                    EventToPersist(
                        event=ev,
                        stream_ordering=pos,
                        received_ts=5000,
                        state_group_before=chain.group,
                        state_group_after=chain.group,
                        txn_id="txn1",
                        device_id="DEV",
                    )
                ],
                forward_extremities=[ev.event_id],
            )
        )
    finally:
        events.stream_ids.complete(pos)
    assert await events.get_event_id_for_txn(ROOM, ALICE, "DEV", "txn1") == ev.event_id
    assert await events.get_event_id_for_txn(ROOM, ALICE, "OTHER", "txn1") is None
    assert await events.get_event_id_for_timestamp(ROOM, 4000, "f") == ev.event_id
    assert await events.get_event_id_for_timestamp(ROOM, 4000, "b") != ev.event_id
    last = await events.get_last_event_at(ROOM, pos)
    assert last is not None
    assert last.event_id == ev.event_id


async def test_stream_positions_become_visible_in_order(database: Database) -> None:
    """Two rooms persisting concurrently: readers never see a position above a gap."""
    events = await EventStore.open(database)
    ids = events.stream_ids
    base = ids.get_current_token()
    first = ids.allocate()
    second = ids.allocate()
    ids.complete(second)
    assert ids.get_current_token() == base
    ids.complete(first)
    assert ids.get_current_token() == second
    with ids.allocating() as third:
        assert ids.get_current_token() == second
    assert ids.get_current_token() == third
    await asyncio.sleep(0)


async def test_get_rejected_names_only_rejected_events(
    stores: tuple[EventStore, StateStore, RoomStore],
) -> None:
    events, _, _ = stores
    chain = await _room(stores)
    ok, _ = await chain.add("m.room.message", content={"body": "fine"})
    bad = make_event("m.room.topic", [ok], state_key="", content={"topic": "x"})
    pos = events.stream_ids.allocate()
    item = EventToPersist(
        event=bad, stream_ordering=pos, received_ts=1, outlier=True,
        rejected_reason="not allowed",
    )  # fmt: skip
    try:
        await events.persist_batch(PersistBatch(room_id=ROOM, events=[item]))
    finally:
        events.stream_ids.complete(pos)
    asked = [ok.event_id, bad.event_id, "$unknown"]
    assert await events.get_rejected(asked) == {bad.event_id}
    assert await events.get_rejected([]) == set()


async def _persist(events: EventStore, batch: PersistBatch) -> None:
    try:
        await events.persist_batch(batch)
    finally:
        for item in batch.events:
            events.stream_ids.complete(item.stream_ordering)


async def test_an_accepted_outlier_is_upgraded_in_place(
    stores: tuple[EventStore, StateStore, RoomStore], database: Database
) -> None:
    """De-outliering: the one row takes a new stream position and its status, gains
    its state groups; cached copies are dropped. A rejected outlier is never upgraded."""
    events, state, _ = stores
    chain = await _room(stores)
    ok, _ = await chain.add("m.room.message", content={"body": "fine"})
    topic = make_event("m.room.topic", [ok], state_key="", content={"topic": "x"})
    bad = make_event("m.room.name", [ok], state_key="", content={"name": "x"})
    first = events.stream_ids.allocate()
    second = events.stream_ids.allocate()
    outliers = [
        EventToPersist(event=topic, stream_ordering=first, received_ts=1, outlier=True),
        EventToPersist(
            event=bad, stream_ordering=second, received_ts=1, outlier=True,
            rejected_reason="not allowed",
        ),
    ]  # fmt: skip
    await _persist(events, PersistBatch(room_id=ROOM, events=outliers))
    cached = await events.get_event(topic.event_id)
    assert cached is not None
    assert cached.outlier

    group = state.allocate_group_id()
    key = ("m.room.topic", "")
    pos = events.stream_ids.allocate()
    upgrade = EventToPersist(
        event=topic, stream_ordering=pos, received_ts=2,
        state_group_before=chain.group, state_group_after=group,
        new_state_groups=[
            NewStateGroup(group, ROOM, None, 0, {**chain.current, key: topic.event_id})
        ],
        upgrades_outlier=True,
    )  # fmt: skip
    delta = CurrentStateDelta(ROOM, pos, {key: topic.event_id}, {key: None})
    await _persist(
        events,
        PersistBatch(
            room_id=ROOM, events=[upgrade], forward_extremities=[topic.event_id],
            current_state=[delta],
        ),
    )  # fmt: skip
    stored = await events.get_event(topic.event_id)
    assert stored is not None
    assert (stored.outlier, stored.stream_ordering, stored.is_servable) == (
        False,
        pos,
        True,
    )
    page, _ = await events.get_room_events_between(ROOM, second, pos, 10)
    assert [e.event_id for e in page] == [topic.event_id]
    groups = await state.get_state_groups_for_events([topic.event_id])
    assert topic.event_id in groups

    def rows(txn: Txn) -> int:
        txn.execute("SELECT COUNT(*) FROM events WHERE event_id = ?", (topic.event_id,))
        row = txn.fetchone()
        return int(row[0]) if row else 0

    assert await database.run_read_txn("test_rows", rows) == 1

    # A rejected outlier stays rejected: its upgrade writes nothing.
    pos = events.stream_ids.allocate()
    refused = EventToPersist(
        event=bad, stream_ordering=pos, received_ts=2, upgrades_outlier=True
    )
    with pytest.raises(OutlierGoneError):
        await _persist(
            events,
            PersistBatch(room_id=ROOM, events=[refused], forward_extremities=[]),
        )
    assert await events.get_forward_extremities(ROOM) == [(topic.event_id, topic.depth)]
    still = await events.get_event(bad.event_id)
    assert still is not None
    assert (still.outlier, still.rejected_reason) == (True, "not allowed")
