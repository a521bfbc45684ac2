"""Stores behind /sync's per-user streams (receipts, account data, filters, presence,
to-device, device lists), on both engines."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.account_data import AccountDataStore
from ranvier.storage.stores.filters import FilterStore
from ranvier.storage.stores.presence import PresenceStore
from ranvier.storage.stores.receipts import ReceiptStore
from ranvier.storage.stores.to_device import (
    DeviceListStore,
    OutgoingMessage,
    ToDeviceStore,
)

ALICE = "@alice:test"
BOB = "@bob:test"
ROOM = "!room:test"


async def test_receipts_move_forward_only(database: Database) -> None:
    store = await ReceiptStore.open(database)
    assert store.get_current_position() == 0
    first = await store.upsert_receipt(
        room_id=ROOM,
        receipt_type="m.read",
        user_id=ALICE,
        thread_id=None,
        event_id="$b",
        event_stream_ordering=20,
        data={"ts": 1},
    )
    assert first == 1
    older = await store.upsert_receipt(
        room_id=ROOM,
        receipt_type="m.read",
        user_id=ALICE,
        thread_id=None,
        event_id="$a",
        event_stream_ordering=10,
        data={"ts": 2},
    )
    assert older is None
    receipt = await store.get_receipt(ROOM, "m.read", ALICE)
    assert receipt is not None
    assert receipt.event_id == "$b"
    assert receipt.thread_id is None
    threaded = await store.upsert_receipt(
        room_id=ROOM,
        receipt_type="m.read",
        user_id=ALICE,
        thread_id="$thread",
        event_id="$a",
        event_stream_ordering=10,
        data={"ts": 3},
    )
    assert threaded is not None
    pos = store.get_current_position()
    assert pos == threaded
    rows = await store.get_receipts_for_rooms([ROOM], 0, pos)
    assert [(r.event_id, r.thread_id) for r in rows] == [
        ("$b", None),
        ("$a", "$thread"),
    ]
    assert await store.get_receipts_for_rooms([ROOM], first, pos) == rows[1:]
    assert await store.get_receipts_for_rooms(["!other:test"], 0, pos) == []
    assert await store.get_read_positions(ALICE, [ROOM, "!x:test"]) == {ROOM: 20}
    # A reopened store continues after the persisted positions.
    again = await ReceiptStore.open(database)
    assert again.get_current_position() == pos


async def test_account_data_global_room_and_since(database: Database) -> None:
    store = await AccountDataStore.open(database)
    p1 = await store.set_account_data(ALICE, None, "m.direct", {"@bob:test": [ROOM]})
    p2 = await store.set_account_data(ALICE, ROOM, "org.example", {"a": 1})
    await store.set_account_data(BOB, None, "m.direct", {})
    assert await store.get_account_data(ALICE, None, "m.direct") == {
        "@bob:test": [ROOM]
    }
    assert await store.get_account_data(ALICE, ROOM, "m.direct") is None
    assert await store.get_account_data(ALICE, ROOM, "org.example") == {"a": 1}
    now = store.get_current_position()
    everything = await store.get_account_data_since(ALICE, 0, now)
    assert everything.global_data == {"m.direct": {"@bob:test": [ROOM]}}
    assert everything.room_data == {ROOM: {"org.example": {"a": 1}}}
    since = await store.get_account_data_since(ALICE, p1, now)
    assert since.global_data == {}
    assert since.room_data == {ROOM: {"org.example": {"a": 1}}}
    assert p2 > p1

    def add_tag(content: dict[str, object]) -> dict[str, object]:
        tags = dict(content.get("tags") or {})  # type: ignore[call-overload]
        tags["u.work"] = {"order": 0.5}
        return {"tags": tags}

    p3 = await store.update_account_data(ALICE, ROOM, "m.tag", add_tag)
    assert p3 is not None
    assert await store.get_account_data(ALICE, ROOM, "m.tag") == {
        "tags": {"u.work": {"order": 0.5}}
    }
    assert (
        await store.update_account_data(ALICE, ROOM, "m.tag", lambda _c: None) is None
    )
    assert (await AccountDataStore.open(database)).get_current_position() == p3


async def test_filters_are_per_user_and_deduplicated(database: Database) -> None:
    store = FilterStore(database)
    f0 = await store.add_filter(ALICE, {"room": {"timeline": {"limit": 5}}, "a": 1})
    f1 = await store.add_filter(ALICE, {"presence": {"types": []}})
    same = await store.add_filter(ALICE, {"a": 1, "room": {"timeline": {"limit": 5}}})
    bob0 = await store.add_filter(BOB, {"presence": {"types": []}})
    assert (f0, f1, same, bob0) == (0, 1, 0, 0)
    assert await store.get_filter(ALICE, 1) == {"presence": {"types": []}}
    assert await store.get_filter(BOB, 1) is None


async def test_presence_rows_and_changes(database: Database) -> None:
    store = await PresenceStore.open(database)
    a = await store.set_presence(
        ALICE, state="online", status_msg="hi", last_active_ts=5, currently_active=True
    )
    b = await store.set_presence(
        BOB,
        state="unavailable",
        status_msg=None,
        last_active_ts=6,
        currently_active=False,
    )
    rows = await store.get_presence([ALICE, BOB, "@nobody:test"])
    assert rows[ALICE].status_msg == "hi"
    assert rows[ALICE].currently_active is True
    assert rows[BOB].currently_active is False
    changes = await store.get_presence_changes(a.stream_id, b.stream_id)
    assert [c.user_id for c in changes] == [BOB]
    a2 = await store.set_presence(
        ALICE,
        state="offline",
        status_msg=None,
        last_active_ts=7,
        currently_active=False,
    )
    changes = await store.get_presence_changes(0, a2.stream_id)
    assert [c.user_id for c in changes] == [BOB, ALICE]
    assert changes[1].state == "offline"


async def test_to_device_idempotent_delivery_and_ack(database: Database) -> None:
    store = await ToDeviceStore.open(database)
    msgs = [
        OutgoingMessage(BOB, "D1", {"type": "m.test", "content": {"n": 1}}),
        OutgoingMessage(BOB, "D2", {"type": "m.test", "content": {"n": 1}}),
    ]
    pos = await store.add_messages(ALICE, "A1", "txn1", msgs, now_ms=1000)
    assert pos == 1
    assert await store.add_messages(ALICE, "A1", "txn1", msgs, now_ms=1001) is None
    # Same txn ID from another device of the sender is a different request.
    pos2 = await store.add_messages(ALICE, "A2", "txn1", msgs[:1], now_ms=1002)
    assert pos2 is not None
    assert pos2 > pos
    now = store.get_current_position()
    assert now == pos2
    d1 = await store.get_messages(BOB, "D1", 0, now, limit=100)
    assert [(m.stream_id, m.message["content"]) for m in d1] == [
        (pos, {"n": 1}),
        (pos2, {"n": 1}),
    ]
    assert [m.stream_id for m in await store.get_messages(BOB, "D1", 0, now, 1)] == [
        pos
    ]
    assert await store.has_messages(BOB, "D2", 0)
    assert not await store.has_messages(BOB, "D2", pos)
    assert await store.delete_messages_up_to(BOB, "D1", pos) == 1
    assert [m.stream_id for m in await store.get_messages(BOB, "D1", 0, now, 100)] == [
        pos2
    ]
    await store.delete_device_inbox(BOB, "D1")
    assert await store.get_messages(BOB, "D1", 0, now, 100) == []
    # Even with every inbox empty, a restart never reuses a position.
    await store.delete_device_inbox(BOB, "D2")
    assert (await ToDeviceStore.open(database)).get_current_position() == pos2
    assert await store.delete_old_txn_ids(1002) == 1


async def test_device_list_changes(database: Database) -> None:
    store = await DeviceListStore.open(database)
    p1 = await store.add_device_list_changes([ALICE])
    p2 = await store.add_device_list_changes([BOB, ALICE])
    assert await store.get_users_with_changes([ALICE, BOB], 0, p2) == {ALICE, BOB}
    assert await store.get_users_with_changes([BOB], 0, p1) == set()
    assert await store.get_users_with_changes([ALICE], p2, p2) == set()
    assert (await DeviceListStore.open(database)).get_current_position() == p2
