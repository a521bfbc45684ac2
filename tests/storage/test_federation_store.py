"""Federation transport storage (schema 0004), on both engines."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.federation import DestinationRetryRow, FederationStore
from ranvier.storage.txn import Txn


def _count_pdus_txn(txn: Txn) -> int:
    txn.execute("SELECT COUNT(*) FROM federation_outbound_pdus")
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


async def test_server_keys_upsert_per_source(database: Database) -> None:
    store = FederationStore(database)
    assert await store.get_server_keys("b.test") == []
    await store.store_server_keys(
        "b.test",
        "b.test",
        10,
        '{"doc":1}',
        [("ed25519:a", "AAAA", 100), ("ed25519:b", "BBBB", 50)],
    )
    await store.store_server_keys(
        "b.test", "n.test", 11, '{"doc":2}', [("ed25519:a", "AAAA", 90)]
    )
    await store.store_server_keys(
        "c.test", "c.test", 12, "{}", [("ed25519:a", "CCCC", 1)]
    )
    rows = await store.get_server_keys("b.test")
    assert [(r.key_id, r.from_server, r.valid_until_ts, r.key_json) for r in rows] == [
        ("ed25519:a", "b.test", 100, '{"doc":1}'),
        ("ed25519:a", "n.test", 90, '{"doc":2}'),
        ("ed25519:b", "b.test", 50, '{"doc":1}'),
    ]
    # A refetch replaces the row of that source.
    await store.store_server_keys(
        "b.test", "b.test", 20, '{"doc":3}', [("ed25519:a", "AAAA", 200)]
    )
    rows = await store.get_server_keys("b.test")
    direct_a = next(
        r for r in rows if r.key_id == "ed25519:a" and r.from_server == "b.test"
    )
    assert (direct_a.valid_until_ts, direct_a.fetched_ts, direct_a.key_json) == (
        200,
        20,
        '{"doc":3}',
    )
    assert len(rows) == 3


async def test_destination_retry_state(database: Database) -> None:
    store = FederationStore(database)
    await store.set_destination_retry_state("b.test", 5, 10, 60_000)
    await store.set_destination_retry_state("a.test", 1, 2, 3)
    await store.set_destination_retry_state("b.test", 5, 70_010, 120_000)
    assert await store.get_destination_retry_states() == [
        DestinationRetryRow("a.test", 1, 2, 3),
        DestinationRetryRow("b.test", 5, 70_010, 120_000),
    ]
    await store.clear_destination_retry_state("b.test")
    await store.clear_destination_retry_state("nobody.test")
    assert [r.destination for r in await store.get_destination_retry_states()] == [
        "a.test"
    ]


async def test_outbound_queue(database: Database) -> None:
    store = FederationStore(database)
    assert await store.get_pending_destinations() == []
    p1 = await store.enqueue_pdu(["b.test", "c.test"], "$1", '{"n":1}', 100)
    p2 = await store.enqueue_pdu(["b.test"], "$2", '{"n":2}', 101)
    e1 = await store.enqueue_edu("c.test", "m.typing", '{"t":1}', 102)
    e2 = await store.enqueue_edu("d.test", "m.receipt", '{"r":1}', 103)
    assert p1 < p2
    assert e1 < e2
    assert await store.get_pending_destinations() == ["b.test", "c.test", "d.test"]

    batch = await store.get_outbound_batch("b.test", 1, 10)
    assert [(p.pdu_id, p.event_id, p.pdu_json) for p in batch.pdus] == [
        (p1, "$1", '{"n":1}')
    ]
    assert batch.edus == []
    batch = await store.get_outbound_batch("c.test", 10, 10)
    assert [p.event_id for p in batch.pdus] == ["$1"]
    assert [(e.edu_id, e.edu_type, e.content_json) for e in batch.edus] == [
        (e1, "m.typing", '{"t":1}')
    ]

    # Delivered to b.test only: the PDU row stays for c.test.
    await store.delete_delivered("b.test", [p1], [])
    assert [
        p.event_id for p in (await store.get_outbound_batch("b.test", 10, 10)).pdus
    ] == ["$2"]
    assert [
        p.event_id for p in (await store.get_outbound_batch("c.test", 10, 10)).pdus
    ] == ["$1"]
    # Another destination's ids are not touched.
    await store.delete_delivered("b.test", [], [e1])
    assert len((await store.get_outbound_batch("c.test", 10, 10)).edus) == 1

    await store.delete_delivered("c.test", [p1], [e1])
    await store.delete_delivered("b.test", [p2], [])
    await store.delete_delivered("d.test", [], [e2])
    assert await store.get_pending_destinations() == []
    assert await database.run_read_txn("count_pdus", _count_pdus_txn) == 0


async def test_received_transactions(database: Database) -> None:
    store = FederationStore(database)
    assert await store.get_received_transaction("a.test", "t1") is None
    await store.set_received_transaction("a.test", "t1", {"pdus": {"$x": {}}}, 1000)
    # The first answer wins: a retry must see the same response.
    await store.set_received_transaction("a.test", "t1", {"pdus": {}}, 2000)
    await store.set_received_transaction("b.test", "t1", {}, 3000)
    assert await store.get_received_transaction("a.test", "t1") == {"pdus": {"$x": {}}}
    assert await store.get_received_transaction("a.test", "t2") is None
    assert await store.delete_received_transactions_before(2500) == 1
    assert await store.get_received_transaction("a.test", "t1") is None
    assert await store.get_received_transaction("b.test", "t1") == {}


async def test_room_queue_bounds_per_destination(database: Database) -> None:
    store = FederationStore(database)

    async def queued(destination: str) -> list[str]:
        batch = await store.get_outbound_batch(destination, 50, 0)
        return [p.event_id for p in batch.pdus]

    for n in range(3):
        trimmed = await store.enqueue_room_pdu(
            ["b.test", "c.test"], f"$a{n}", "!a", "{}", n, max_per_room=3
        )
        assert trimmed == []
    await store.enqueue_room_pdu(["b.test"], "$x0", "!x", "{}", 5, max_per_room=3)
    # c.test is catching up: only its newest PDU of !a stays; b.test crosses the limit
    # one PDU later. Other rooms are untouched.
    assert await store.enqueue_room_pdu(
        ["b.test", "c.test"], "$a3", "!a", "{}", 6, max_per_room=3, catch_up=["c.test"]
    ) == ["b.test", "c.test"]
    assert await queued("b.test") == ["$x0", "$a3"]
    assert await queued("c.test") == ["$a3"]
    # Rows no destination waits for are gone.
    assert await database.run_read_txn("count_pdus", _count_pdus_txn) == 2


async def test_coalesced_edus_replace_the_queued_one(database: Database) -> None:
    store = FederationStore(database)
    await store.enqueue_edu("b.test", "m.typing", '{"n":1}', 1, coalesce_key="k")
    await store.enqueue_edu("b.test", "m.typing", '{"n":2}', 2, coalesce_key="j")
    await store.enqueue_edu("c.test", "m.typing", '{"n":3}', 3, coalesce_key="k")
    await store.enqueue_edu("b.test", "m.presence", '{"n":4}', 4, coalesce_key="k")
    await store.enqueue_edu("b.test", "m.typing", '{"n":5}', 5, coalesce_key="k")
    batch = await store.get_outbound_batch("b.test", 0, 10)
    assert [e.content_json for e in batch.edus] == ['{"n":2}', '{"n":4}', '{"n":5}']
    assert len((await store.get_outbound_batch("c.test", 0, 10)).edus) == 1


def _insert_event_txn(
    txn: Txn, stream: int, sender: str, *, outlier: bool = False
) -> None:
    txn.execute(
        "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type,"
        " sender, depth, origin_server_ts, received_ts, outlier, json)"
        " VALUES (?, ?, '!r', '10', 'm.room.message', ?, 1, 1, 1, ?, ?)",
        (stream, f"$e{stream}", sender, outlier, '{"type":"m.room.message"}'),
    )


async def test_stream_position_and_local_events_after(database: Database) -> None:
    store = FederationStore(database)
    assert await store.get_stream_position("events") is None
    await store.set_stream_position("events", 4)
    await store.set_stream_position("events", 7)
    assert await store.get_stream_position("events") == 7
    senders = {
        1: "@a:hs1",
        2: "@b:other",
        3: "@c:hs1",
        4: "@d:HS1",  # another server name: case matters
        5: "@e:xhs1",
        6: "@f:hs1",
        7: "@g:hs1",
    }
    for stream, sender in senders.items():
        await database.run_txn(
            "insert_event", _insert_event_txn, stream, sender, outlier=stream == 6
        )
    events, scanned = await store.get_local_events_after("hs1", 0, 7, 100)
    assert [e.event.event_id for e in events] == ["$e1", "$e3", "$e7"]
    assert scanned == 7
    # Paged: at most `limit` matching rows scanned, with where to go on from.
    events, scanned = await store.get_local_events_after("hs1", 0, 6, 2)
    assert ([e.event.event_id for e in events], scanned) == (["$e1", "$e3"], 3)
    events, scanned = await store.get_local_events_after("hs1", 3, 6, 2)
    assert ([e.event.event_id for e in events], scanned) == ([], 6)
