"""Push rules, push actions with unread counts, and pushers, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.storage.database import Database
from ranvier.storage.stores.push import (
    Counts,
    PushActionRow,
    PushStore,
    RoomCounts,
)
from ranvier.storage.stores.pushers import PusherRow, PusherStore
from ranvier.storage.stores.receipts import ReceiptStore
from ranvier.storage.txn import Txn

ALICE = "@alice:test"
BOB = "@bob:test"
ROOM = "!room:test"
OTHER = "!other:test"
THREAD = "$root"


def row(
    pos: int,
    *,
    room: str = ROOM,
    user: str = BOB,
    thread: str = "main",
    highlight: bool = False,
    ts: int = 1000,
) -> PushActionRow:
    return PushActionRow(
        user_id=user,
        room_id=room,
        event_id=f"$e{pos}{room}",
        stream_ordering=pos,
        thread_id=thread,
        actions=("notify", {"set_tweak": "highlight"}) if highlight else ("notify",),
        highlight=highlight,
        received_ts=ts,
    )


async def read(
    receipts: ReceiptStore, pos: int, thread: str | None = None, room: str = ROOM
) -> None:
    await receipts.upsert_receipt(
        room_id=room,
        receipt_type="m.read",
        user_id=BOB,
        thread_id=thread,
        event_id=f"$e{pos}{room}",
        event_stream_ordering=pos,
        data={},
    )


async def test_push_rules_documents(database: Database) -> None:
    store = PushStore(database)
    assert await store.get_push_rules([BOB]) == {}
    new = await store.update_push_rules(BOB, lambda old: {**old, "n": 1})
    assert new == {"n": 1}
    again = await store.update_push_rules(BOB, lambda old: {"n": old["n"] + 1})
    assert again == {"n": 2}
    assert await store.get_push_rules([BOB, ALICE]) == {BOB: {"n": 2}}

    def refuse(old: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.update_push_rules(BOB, refuse)
    assert await store.get_push_rules([BOB]) == {BOB: {"n": 2}}


async def test_counts_follow_read_receipts_and_threads(database: Database) -> None:
    store = PushStore(database)
    receipts = await ReceiptStore.open(database)
    await store.add_push_actions(
        [
            row(1),
            row(2, highlight=True),
            row(3, thread=THREAD),
            row(4, thread=THREAD, highlight=True),
            row(5),
            row(6, room=OTHER),
            row(7, user=ALICE),
        ]
    )
    # The same rows again are ignored.
    await store.add_push_actions([row(1)])

    counts = await store.get_notification_counts(BOB, {ROOM: 0, OTHER: 0}, 100)
    assert counts[ROOM].threads == {"main": Counts(3, 1), THREAD: Counts(2, 1)}
    assert counts[ROOM].total() == Counts(5, 2)
    assert counts[OTHER].total() == Counts(1, 0)
    # Up to a position, and from a floor (the join).
    assert (await store.get_notification_counts(BOB, {ROOM: 2}, 4))[
        ROOM
    ].total() == Counts(2, 1)

    # A receipt in the thread only reads the thread.
    await read(receipts, 3, THREAD)
    counts = await store.get_notification_counts(BOB, {ROOM: 0}, 100)
    assert counts[ROOM].threads == {"main": Counts(3, 1), THREAD: Counts(1, 1)}
    # "main" reads the main timeline only.
    await read(receipts, 2, "main")
    counts = await store.get_notification_counts(BOB, {ROOM: 0}, 100)
    assert counts[ROOM].threads == {"main": Counts(1, 0), THREAD: Counts(1, 1)}
    # An unthreaded receipt reads everything before it.
    await read(receipts, 4)
    counts = await store.get_notification_counts(BOB, {ROOM: 0}, 100)
    assert counts[ROOM].total() == Counts(1, 0)
    assert await store.get_notification_counts(BOB, {}, 100) == {}
    empty = await store.get_notification_counts(BOB, {"!none:test": 0}, 100)
    assert empty == {"!none:test": RoomCounts()}


async def test_total_unread_over_joined_rooms(database: Database) -> None:
    store = PushStore(database)
    receipts = await ReceiptStore.open(database)

    def join(txn: Txn, room: str, pos: int) -> None:
        txn.execute(
            "INSERT INTO current_memberships (room_id, user_id, membership, event_id,"
            " stream_ordering) VALUES (?, ?, 'join', ?, ?)",
            (room, BOB, f"$join{room}", pos),
        )

    await database.run_txn("join", join, ROOM, 0)
    await database.run_txn("join", join, OTHER, 5)
    await store.add_push_actions(
        [row(1), row(2), row(3, room=OTHER), row(6, room=OTHER)]
    )
    # OTHER's row 3 predates the join.
    assert await store.get_total_unread(BOB) == 3
    await read(receipts, 2)
    assert await store.get_total_unread(BOB) == 1
    assert await store.get_total_unread(ALICE) == 0


async def test_unread_after_and_notifications(database: Database) -> None:
    store = PushStore(database)
    receipts = await ReceiptStore.open(database)
    await store.add_push_actions(
        [
            row(1),
            row(2, highlight=True),
            row(3, room=OTHER),
            row(4),
            row(5, thread=THREAD),
        ]
    )
    await read(receipts, 2)
    unread, last = await store.get_unread_after(BOB, 0, 10)
    assert [r.stream_ordering for r in unread] == [3, 4, 5]
    assert last == 5
    assert unread[0].actions == ("notify",)
    unread, last = await store.get_unread_after(BOB, 0, 2)
    assert (unread, last) == ([], 2)
    assert await store.get_unread_after(BOB, 5, 10) == ([], 5)

    page = await store.get_notifications(BOB, None, 3, False)
    assert [(n.row.stream_ordering, n.read) for n in page] == [
        (5, False),
        (4, False),
        (3, False),
    ]
    page = await store.get_notifications(BOB, 3, 3, False)
    assert [(n.row.stream_ordering, n.read) for n in page] == [(2, True), (1, True)]
    highlights = await store.get_notifications(BOB, None, 10, True)
    assert [n.row.stream_ordering for n in highlights] == [2]
    assert highlights[0].row.highlight is True


async def test_old_push_actions_are_deleted(database: Database) -> None:
    store = PushStore(database)
    await store.add_push_actions(
        [row(1, ts=10), row(2, ts=20), row(3, ts=30), row(3, user=ALICE, ts=30)]
    )
    assert await store.delete_push_actions_before(25, 1) == 1
    assert await store.delete_push_actions_before(25, 10) == 1
    unread, _ = await store.get_unread_after(BOB, 0, 10)
    assert [r.stream_ordering for r in unread] == [3]


def pusher(user: str = BOB, pushkey: str = "key", **kw: Any) -> PusherRow:
    base: dict[str, Any] = {
        "user_id": user,
        "app_id": "com.example",
        "pushkey": pushkey,
        "kind": "http",
        "device_id": "DEV",
        "app_display_name": "App",
        "device_display_name": "Phone",
        "profile_tag": None,
        "lang": "en",
        "data": {"url": "https://gw/_matrix/push/v1/notify"},
        "pushkey_ts": 1_000,
        "last_stream_ordering": 7,
    }
    return PusherRow(**{**base, **kw})


async def test_pushers(database: Database) -> None:
    store = PusherStore(database)
    assert await store.set_pusher(pusher(), replace_others=True) == []
    # The same app + pushkey for another user: appended, or taking it over.
    assert await store.set_pusher(pusher(ALICE), replace_others=False) == []
    assert len(await store.get_pushers()) == 2
    removed = await store.set_pusher(pusher(ALICE, lang="de"), replace_others=True)
    assert removed == [(BOB, "com.example", "key")]
    assert [p.user_id for p in await store.get_pushers()] == [ALICE]

    await store.set_pusher(pusher(), replace_others=False)
    await store.update_progress(
        pusher().key, last_stream_ordering=42, last_success_ts=5, failing_since=None
    )
    # Updating a pusher keeps its delivery position.
    await store.set_pusher(
        pusher(app_display_name="App 2", last_stream_ordering=99), replace_others=False
    )
    got = await store.get_pusher(pusher().key)
    assert got is not None
    assert (got.app_display_name, got.last_stream_ordering, got.last_success_ts) == (
        "App 2",
        42,
        5,
    )
    assert got.data == {"url": "https://gw/_matrix/push/v1/notify"}

    await store.set_pusher(
        pusher(pushkey="other", device_id="DEV2"), replace_others=True
    )
    gone = await store.delete_pushers_of_devices(BOB, ["DEV"])
    assert gone == [(BOB, "com.example", "key")]
    assert [p.pushkey for p in await store.get_pushers(BOB)] == ["other"]
    assert await store.delete_pusher((BOB, "com.example", "other")) is True
    assert await store.delete_pusher((BOB, "com.example", "other")) is False
    assert await store.get_pushers(BOB) == []
    assert await store.delete_pushers_of_devices(BOB, []) == []


def _insert_event_txn(
    txn: Txn,
    stream: int,
    etype: str = "m.room.message",
    content: str = "{}",
    *,
    outlier: bool = False,
    rejected: str | None = None,
    soft_failed: bool = False,
) -> None:
    txn.execute(
        "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type,"
        " state_key, sender, depth, origin_server_ts, received_ts, outlier,"
        " rejected_reason, soft_failed, json)"
        " VALUES (?, ?, '!r', '10', ?, ?, '@a:test', 1, 1, 1, ?, ?, ?, ?)",
        (
            stream,
            f"$e{stream}",
            etype,
            BOB if etype == "m.room.member" else None,
            outlier,
            rejected,
            soft_failed,
            f'{{"type":"{etype}","content":{content}}}',
        ),
    )


async def test_evaluated_position_and_events_to_evaluate(database: Database) -> None:
    store = PushStore(database)
    assert await store.get_evaluated_position() is None
    # The position is written with the rows it covers, and alone.
    await store.add_push_actions([row(1)], 3)
    assert await store.get_evaluated_position() == 3
    await store.add_push_actions([], 5)
    assert await store.get_evaluated_position() == 5
    invite = '{"membership":"invite"}'
    join = '{"membership":"join"}'
    inserts: list[tuple[int, str, str, dict[str, Any]]] = [
        (1, "m.room.message", "{}", {}),
        (2, "m.room.message", "{}", {"rejected": "auth"}),
        (3, "m.room.message", "{}", {"soft_failed": True}),
        (4, "m.room.message", "{}", {"outlier": True}),
        (5, "m.room.member", invite, {"outlier": True}),  # an out-of-band invite
        (6, "m.room.member", join, {"outlier": True}),  # a join's state: not new
        (7, "m.room.member", join, {}),
        (8, "m.room.message", "{}", {}),
    ]
    for stream, etype, content, kw in inserts:
        await database.run_txn(
            "insert_event", _insert_event_txn, stream, etype, content, **kw
        )
    # What the pipeline would have notified: what the evaluator replays.
    events, scanned = await store.get_events_to_evaluate(0, 8, 100)
    assert [e.event.event_id for e in events] == ["$e1", "$e5", "$e7", "$e8"]
    assert scanned == 8
    # Paged: at most `limit` candidate rows, with where to go on from.
    events, scanned = await store.get_events_to_evaluate(0, 8, 3)
    assert ([e.event.event_id for e in events], scanned) == (["$e1", "$e5"], 6)
    events, scanned = await store.get_events_to_evaluate(6, 8, 3)
    assert ([e.event.event_id for e in events], scanned) == (["$e7", "$e8"], 8)


async def test_writing_an_events_actions_again_does_not_double_count(
    database: Database,
) -> None:
    store = PushStore(database)
    await store.add_push_actions([row(1), row(2, highlight=True)], 2)
    before = await store.get_notification_counts(BOB, {ROOM: 0}, 10)
    assert before[ROOM].total() == Counts(2, 1)
    # A replay after a restart evaluates the same events again.
    await store.add_push_actions([row(1), row(2, highlight=True)], 2)
    after = await store.get_notification_counts(BOB, {ROOM: 0}, 10)
    assert after == before
