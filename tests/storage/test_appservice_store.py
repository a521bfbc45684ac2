"""Application-service delivery state on both engines: the first position, atomic
transaction creation with the position, oldest-first redelivery, and deletion."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.appservices import AppServiceStore


async def test_transactions_queue_in_order(database: Database) -> None:
    store = AppServiceStore(database)
    assert await store.get_or_init_position("irc", 42) == 42
    # A later start keeps the stored position, whatever the stream says now.
    assert await store.get_or_init_position("irc", 99) == 42
    assert await store.get_oldest_txn("irc") is None
    first = await store.create_txn("irc", '{"events":[1]}', 50)
    second = await store.create_txn("irc", '{"events":[2]}', 60)
    assert (first, second) == (1, 2)
    assert await store.get_or_init_position("irc", 0) == 60
    assert await store.count_txns("irc") == 2
    pending = await store.get_oldest_txn("irc")
    assert pending is not None
    assert (pending.txn_id, pending.body) == (1, '{"events":[1]}')
    await store.delete_txn("irc", 1)
    pending = await store.get_oldest_txn("irc")
    assert pending is not None
    assert pending.txn_id == 2
    await store.delete_txn("irc", 2)
    assert await store.get_oldest_txn("irc") is None
    # Transaction IDs keep growing: a service may remember IDs it has seen.
    assert await store.create_txn("irc", "{}", 70) == 3
    await store.set_position("irc", 80)
    assert await store.get_or_init_position("irc", 0) == 80
    # Services are independent.
    assert await store.get_or_init_position("slack", 7) == 7
    assert await store.get_oldest_txn("slack") is None


async def test_no_events_and_no_members(database: Database) -> None:
    store = AppServiceStore(database)
    assert await store.get_events_after(0, 100, 10) == []
    assert await store.get_joined_members([]) == {}
    assert await store.get_joined_members(["!nowhere:test"]) == {}
