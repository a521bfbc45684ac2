"""Sliding sync connection state (schema 0016) on both engines: positions, rows
written only where a room changed, acknowledgement dropping abandoned responses,
restarts of a connection, expiry and deleted devices."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.sliding_sync import (
    LIVE,
    MAX_CONNECTIONS_PER_DEVICE,
    PREVIOUSLY,
    SentRoom,
    SlidingSyncStore,
)

ALICE = "@alice:test"
DAY = 24 * 3600 * 1000


def room(room_id: str, status: str = LIVE, last: int = 0) -> SentRoom:
    return SentRoom(room_id, status, last, "join", {"timeline_limit": 1})


async def test_positions_chain_and_room_rows(database: Database) -> None:
    store = SlidingSyncStore(database)
    p1 = await store.create_connection(
        ALICE, "DEV", "main", 1000, "s1_0_0_0_0_0_0", {"n": 1}, [room("!a"), room("!b")]
    )
    state = await store.acknowledge(ALICE, "DEV", "main", p1, 1001, 0)
    assert state is not None
    assert state.stream_token == "s1_0_0_0_0_0_0"
    assert state.data == {"n": 1}
    assert set(state.rooms) == {"!a", "!b"}
    # The next response rewrites only !b.
    p2 = await store.add_position(
        state.connection_key,
        p1,
        1002,
        "s2_0_0_0_0_0_0",
        {},
        [room("!b", PREVIOUSLY, 1)],
    )
    assert p2 is not None
    # A retry of p1 (p2 never arrived) builds p3 from p1: p2's rows are not seen.
    retry = await store.acknowledge(ALICE, "DEV", "main", p1, 1003, 0)
    assert retry is not None
    assert retry.rooms["!b"].status == LIVE
    p3 = await store.add_position(
        retry.connection_key, p1, 1004, "s3_0_0_0_0_0_0", {}, [room("!c")]
    )
    assert p3 is not None
    assert await store.acknowledge(ALICE, "DEV", "main", p2, 1005, 0) is None
    at3 = await store.acknowledge(ALICE, "DEV", "main", p3, 1006, 0)
    assert at3 is not None
    assert set(at3.rooms) == {"!a", "!b", "!c"}
    assert at3.rooms["!b"].status == LIVE
    # p1 is behind the acknowledged p3 now; a response built on it cannot be saved.
    assert await store.acknowledge(ALICE, "DEV", "main", p1, 1007, 0) is None
    assert await store.add_position(at3.connection_key, p1, 1008, "s", {}, []) is None
    # Another device or conn_id never sees this connection.
    assert await store.acknowledge(ALICE, "OTHER", "main", p3, 1009, 0) is None
    assert await store.acknowledge(ALICE, "DEV", "second", p3, 1009, 0) is None


async def test_restart_expiry_and_deleted_devices(database: Database) -> None:
    store = SlidingSyncStore(database)
    p1 = await store.create_connection(ALICE, "DEV", "main", 0, "s", {}, [room("!a")])
    # Starting over (no pos) replaces the connection.
    p2 = await store.create_connection(ALICE, "DEV", "main", 10, "s", {}, [])
    assert await store.acknowledge(ALICE, "DEV", "main", p1, 11, 0) is None
    fresh = await store.acknowledge(ALICE, "DEV", "main", p2, 12, 0)
    assert fresh is not None
    assert fresh.rooms == {}
    # Unused for longer than the TTL: gone.
    assert await store.acknowledge(ALICE, "DEV", "main", p2, 10 * DAY, 9 * DAY) is None
    p3 = await store.create_connection(ALICE, "DEV", "main", 20 * DAY, "s", {}, [])
    other = await store.create_connection(ALICE, "DEV2", "main", 0, "s", {}, [])
    assert await store.delete_expired(20 * DAY - 1) == 1
    assert await store.acknowledge(ALICE, "DEV2", "main", other, 20 * DAY, 0) is None
    await store.delete_device_connections(ALICE, ["DEV"])
    assert await store.acknowledge(ALICE, "DEV", "main", p3, 20 * DAY, 0) is None


async def test_connections_per_device_are_bounded(database: Database) -> None:
    store = SlidingSyncStore(database)
    first = await store.create_connection(ALICE, "DEV", "c0", 0, "s", {}, [])
    for i in range(1, MAX_CONNECTIONS_PER_DEVICE + 1):
        await store.create_connection(ALICE, "DEV", f"c{i}", i, "s", {}, [])
    assert await store.acknowledge(ALICE, "DEV", "c0", first, 100, 0) is None
