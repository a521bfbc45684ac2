"""Concurrent transactions, readers beside the writer, cancellation and close()."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest

from ranvier.storage.database import (
    Database,
    DatabaseClosedError,
    DatabaseSettings,
    open_database,
)
from ranvier.storage.txn import EngineName, Isolation, Txn, TxnOptions

WAIT = 10.0  # seconds; generous bound so a broken test fails instead of hanging


def create_counter_txn(txn: Txn) -> None:
    txn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)")
    txn.execute("INSERT INTO counters (name, value) VALUES ('c', 0)")


def get_counter_txn(txn: Txn) -> int:
    txn.execute("SELECT value FROM counters WHERE name = 'c'")
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def increment_txn(txn: Txn, *, lock: bool) -> int:
    """Read-modify-write in Python on purpose (not `SET value = value + 1`)."""
    suffix = txn.engine.for_update if lock else ""
    txn.execute(f"SELECT value FROM counters WHERE name = ?{suffix}", ("c",))
    row = txn.fetchone()
    assert row is not None
    value = int(row[0]) + 1
    txn.execute("UPDATE counters SET value = ? WHERE name = ?", (value, "c"))
    return value


async def test_concurrent_increments_with_row_lock_are_exact(
    database: Database,
) -> None:
    await database.run_txn("create", create_counter_txn)
    results = await asyncio.gather(
        *(database.run_txn("increment", increment_txn, lock=True) for _ in range(200))
    )
    assert sorted(results) == list(range(1, 201))
    assert await database.run_txn("get", get_counter_txn) == 200


async def test_concurrent_increments_under_repeatable_read_are_exact(
    database_settings: DatabaseSettings,
) -> None:
    """No row lock: PostgreSQL aborts the losers with serialization failures and
    run_txn reruns them; SQLite never conflicts because its writer is serialised."""
    settings = dataclasses.replace(database_settings, max_txn_attempts=100)
    options = TxnOptions(isolation=Isolation.REPEATABLE_READ)
    async with await open_database(settings) as db:
        await db.run_txn("create", create_counter_txn)
        await asyncio.gather(
            *(
                db.run_txn_with("increment", options, increment_txn, lock=False)
                for _ in range(30)
            )
        )
        assert await db.run_txn("get", get_counter_txn) == 30


async def test_conflicting_writers(database: Database, db_engine: EngineName) -> None:
    """Two writers that both read before either writes.

    PostgreSQL (REPEATABLE READ): both really overlap; the second UPDATE fails with a
    serialization failure and is rerun, so the total is exact. SQLite: the writer thread
    runs them one after the other, so they can never overlap.
    """
    await database.run_txn("create", create_counter_txn)
    both_read = threading.Barrier(2, timeout=WAIT)
    attempts: list[int] = []
    inside = 0
    max_inside = 0
    guard = threading.Lock()

    def contended_txn(txn: Txn) -> None:
        nonlocal inside, max_inside
        with guard:
            attempts.append(1)
            inside += 1
            max_inside = max(max_inside, inside)
        try:
            txn.execute("SELECT value FROM counters WHERE name = 'c'")
            row = txn.fetchone()
            assert row is not None
            if db_engine == "postgres" and len(attempts) <= 2:
                both_read.wait()
            txn.execute(
                "UPDATE counters SET value = ? WHERE name = 'c'", (int(row[0]) + 1,)
            )
        finally:
            with guard:
                inside -= 1

    options = TxnOptions(isolation=Isolation.REPEATABLE_READ)
    await asyncio.gather(
        database.run_txn_with("contended", options, contended_txn),
        database.run_txn_with("contended", options, contended_txn),
    )
    assert await database.run_txn("get", get_counter_txn) == 2
    if db_engine == "postgres":
        assert max_inside == 2
        assert len(attempts) == 3
    else:
        assert max_inside == 1
        assert len(attempts) == 2


async def test_reader_runs_beside_open_write_transaction(database: Database) -> None:
    await database.run_txn("create", create_counter_txn)
    reader_done = threading.Event()

    def slow_write_txn(txn: Txn) -> None:
        txn.execute("UPDATE counters SET value = 99 WHERE name = 'c'")
        # Holds the write transaction open until the reader has finished.
        assert reader_done.wait(WAIT), "reader was blocked by the writer"

    def read_txn(txn: Txn) -> int:
        try:
            return get_counter_txn(txn)
        finally:
            reader_done.set()

    writer = asyncio.create_task(database.run_txn("slow_write", slow_write_txn))
    # The reader must see the last committed value, not the writer's uncommitted one.
    assert await database.run_read_txn("read", read_txn) == 0
    await writer
    assert await database.run_read_txn("read", get_counter_txn) == 99


async def test_close_waits_for_in_flight_transactions(
    database_settings: DatabaseSettings,
) -> None:
    def create_txn(txn: Txn) -> None:
        txn.execute("CREATE TABLE log (n INTEGER)")

    def slow_insert_txn(txn: Txn, n: int) -> int:
        time.sleep(0.02)
        txn.execute("INSERT INTO log (n) VALUES (?)", (n,))
        return n

    def count_txn(txn: Txn) -> int:
        txn.execute("SELECT COUNT(*) FROM log")
        row = txn.fetchone()
        assert row is not None
        return int(row[0])

    db = await open_database(database_settings)
    await db.run_txn("create", create_txn)
    tasks = [
        asyncio.create_task(db.run_txn("slow_insert", slow_insert_txn, n))
        for n in range(8)
    ]
    await asyncio.sleep(0)  # every task is now waiting on its transaction
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    with pytest.raises(DatabaseClosedError):
        await db.run_txn("too_late", count_txn)
    await closing
    assert all(task.done() for task in tasks)
    assert sorted(await asyncio.gather(*tasks)) == list(range(8))

    async with await open_database(database_settings) as reopened:
        assert await reopened.run_txn("count", count_txn) == 8


async def test_cancelled_caller_transaction_commits_and_calls_back(
    database_settings: DatabaseSettings,
) -> None:
    entered = threading.Event()
    release = threading.Event()
    callbacks: list[bool] = []
    loop_thread = threading.get_ident()

    def note() -> None:
        callbacks.append(threading.get_ident() == loop_thread)

    def blocking_txn(txn: Txn) -> None:
        txn.execute("INSERT INTO kv_settings (key, value) VALUES ('k', 'v')")
        txn.call_after(note)
        entered.set()
        assert release.wait(WAIT)

    def get_txn(txn: Txn) -> list[tuple[str, str]]:
        txn.execute("SELECT key, value FROM kv_settings")
        return [(str(k), str(v)) for k, v in txn.fetchall()]

    db = await open_database(database_settings)
    task = asyncio.create_task(db.run_txn("blocking", blocking_txn))
    assert await asyncio.to_thread(entered.wait, WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await db.close()  # waits for the orphaned transaction and its callbacks
    assert callbacks == [True]

    async with await open_database(database_settings) as reopened:
        assert await reopened.run_txn("get", get_txn) == [("k", "v")]
