"""`Database.run_txn` and `Txn` on both engines."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Coroutine
from typing import Any

import psycopg
import psycopg.errors
import pytest

from ranvier.storage.database import (
    Database,
    DatabaseClosedError,
    DatabaseSettings,
    open_database,
)
from ranvier.storage.txn import EngineName, Txn

DB_ERRORS = (sqlite3.Error, psycopg.Error)


class Boom(Exception):
    pass


def create_items_txn(txn: Txn) -> None:
    txn.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n BIGINT)"
    )


def insert_item_txn(txn: Txn, item_id: int, name: str, n: int | None = None) -> None:
    txn.execute("INSERT INTO items (id, name, n) VALUES (?, ?, ?)", (item_id, name, n))


def get_names_txn(txn: Txn) -> list[str]:
    txn.execute("SELECT name FROM items ORDER BY id")
    return [row[0] for row in txn.fetchall()]


async def items_db(database: Database) -> Database:
    await database.run_txn("create_items", create_items_txn)
    return database


def retryable_error(engine: EngineName) -> Exception:
    if engine == "sqlite":
        exc = sqlite3.OperationalError("database is locked")
        exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
        return exc
    return psycopg.errors.SerializationFailure("could not serialize access")


async def test_engine_name(database: Database, db_engine: EngineName) -> None:
    assert database.engine.name == db_engine

    def name_txn(txn: Txn) -> str:
        return txn.engine_name

    assert await database.run_txn("name", name_txn) == db_engine


async def test_commit_then_read(database: Database) -> None:
    db = await items_db(database)
    await db.run_txn("insert", insert_item_txn, 1, "one")
    await db.run_txn("insert", insert_item_txn, item_id=2, name="two", n=5)
    assert await db.run_txn("names", get_names_txn) == ["one", "two"]
    assert await db.run_read_txn("names", get_names_txn) == ["one", "two"]


async def test_exception_rolls_back_and_propagates(database: Database) -> None:
    db = await items_db(database)

    def insert_then_fail_txn(txn: Txn) -> None:
        insert_item_txn(txn, 1, "one")
        raise Boom("no")

    with pytest.raises(Boom, match="no"):
        await db.run_txn("fail", insert_then_fail_txn)
    assert await db.run_txn("names", get_names_txn) == []


async def test_sql_error_rolls_back_whole_transaction(database: Database) -> None:
    db = await items_db(database)

    def duplicate_txn(txn: Txn) -> None:
        insert_item_txn(txn, 1, "one")
        insert_item_txn(txn, 2, "one")

    with pytest.raises(DB_ERRORS):
        await db.run_txn("duplicate", duplicate_txn)
    # The connection is usable again and nothing of the failed transaction remains.
    await db.run_txn("insert", insert_item_txn, 3, "three")
    assert await db.run_txn("names", get_names_txn) == ["three"]


async def test_placeholders_with_percent_and_question_marks(database: Database) -> None:
    db = await items_db(database)
    await db.run_txn("insert", insert_item_txn, 1, "100% sure?")
    await db.run_txn("insert", insert_item_txn, 2, "bar")

    def queries_txn(txn: Txn) -> list[Any]:
        out: list[Any] = []
        txn.execute("SELECT '100%', 'why?', ? FROM items WHERE id = ?", ("p", 1))
        out.append(txn.fetchone())
        txn.execute("SELECT name FROM items WHERE name LIKE '100%' AND id = ?", (1,))
        out.append(txn.fetchone())
        txn.execute("SELECT name FROM items WHERE name LIKE ? ORDER BY id", ("%?",))
        out.append(txn.fetchall())
        txn.execute("SELECT '50%' -- a comment? yes\n")
        out.append(txn.fetchone())
        txn.execute('SELECT name AS "who?" FROM items WHERE id = 2')
        out.append(txn.fetchone())
        return out

    assert await db.run_txn("queries", queries_txn) == [
        ("100%", "why?", "p"),
        ("100% sure?",),
        [("100% sure?",)],
        ("50%",),
        ("bar",),
    ]


async def test_fetchone_none_and_fetchall_empty(database: Database) -> None:
    db = await items_db(database)

    def empty_txn(txn: Txn) -> tuple[Any, Any]:
        txn.execute("SELECT name FROM items WHERE id = ?", (42,))
        one = txn.fetchone()
        txn.execute("SELECT name FROM items")
        return one, txn.fetchall()

    assert await db.run_txn("empty", empty_txn) == (None, [])


async def test_executemany_rowcount_and_in_list(database: Database) -> None:
    db = await items_db(database)

    def batch_txn(txn: Txn) -> tuple[int, int, list[str], list[str]]:
        txn.executemany(
            "INSERT INTO items (id, name, n) VALUES (?, ?, ?)",
            [(i, f"item{i}", i * 10) for i in range(1, 6)],
        )
        inserted = txn.rowcount
        txn.execute("UPDATE items SET n = n + 1 WHERE n >= ?", (40,))
        updated = txn.rowcount
        clause, params = txn.in_list("id", [2, 4, 99])
        txn.execute(f"SELECT name FROM items WHERE {clause} ORDER BY id", params)
        some = [row[0] for row in txn.fetchall()]
        clause, params = txn.in_list("id", [])
        txn.execute(f"SELECT name FROM items WHERE {clause}", params)
        none = [row[0] for row in txn.fetchall()]
        return inserted, updated, some, none

    assert await db.run_txn("batch", batch_txn) == (5, 2, ["item2", "item4"], [])


async def test_portable_types_round_trip(database: Database) -> None:
    def types_txn(txn: Txn) -> tuple[Any, ...] | None:
        txn.execute(
            "CREATE TABLE typed (big BIGINT, raw BYTEA, flag BOOLEAN, txt TEXT,"
            " dbl DOUBLE PRECISION, absent TEXT)"
        )
        txn.execute(
            "INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?)",
            (2**62, b"\x00\xffbytes", True, "héllo ☃", 1.5, None),
        )
        txn.execute(
            "SELECT big, raw, flag, txt, dbl, absent FROM typed WHERE flag = ?",
            (True,),
        )
        return txn.fetchone()

    row = await database.run_txn("types", types_txn)
    assert row is not None
    big, raw, flag, txt, dbl, absent = row
    assert big == 2**62
    assert bytes(raw) == b"\x00\xffbytes"
    # SQLite has no boolean type: it returns 1. Compare with ==, convert with bool().
    assert flag == 1
    assert bool(flag) is True
    assert (txt, dbl, absent) == ("héllo ☃", 1.5, None)


async def test_autoincrement_returning_and_upsert(database: Database) -> None:
    def create_txn(txn: Txn) -> None:
        txn.execute(
            f"CREATE TABLE notes (id {txn.engine.autoincrement_pk}, k TEXT UNIQUE, v TEXT)"
        )

    def upsert_txn(txn: Txn, key: str, value: str) -> int:
        txn.execute(
            "INSERT INTO notes (k, v) VALUES (?, ?)"
            " ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING id",
            (key, value),
        )
        row = txn.fetchone()
        assert row is not None
        return int(row[0])

    def all_txn(txn: Txn) -> list[tuple[Any, ...]]:
        txn.execute("SELECT id, k, v FROM notes ORDER BY id")
        return txn.fetchall()

    await database.run_txn("create", create_txn)
    first = await database.run_txn("upsert", upsert_txn, "a", "1")
    second = await database.run_txn("upsert", upsert_txn, "b", "2")
    again = await database.run_txn("upsert", upsert_txn, "a", "3")
    assert second > first
    assert again == first
    assert await database.run_txn("all", all_txn) == [
        (first, "a", "3"),
        (second, "b", "2"),
    ]


async def test_read_txn_rejects_writes(database: Database) -> None:
    db = await items_db(database)
    with pytest.raises(DB_ERRORS):
        await db.run_read_txn("write_in_read", insert_item_txn, 1, "one")
    assert await db.run_txn("names", get_names_txn) == []


async def test_call_after_runs_after_commit_on_loop_thread(database: Database) -> None:
    db = await items_db(database)
    calls: list[tuple[str, int, bool]] = []
    loop_thread = threading.get_ident()

    def record(label: str, *, value: int) -> None:
        calls.append((label, value, threading.get_ident() == loop_thread))

    def insert_txn(txn: Txn) -> str:
        txn.call_after(record, "first", value=1)
        insert_item_txn(txn, 1, "one")
        txn.call_after(record, "second", value=2)
        # Not yet: the transaction has not committed.
        assert calls == []
        return "done"

    assert await db.run_txn("insert", insert_txn) == "done"
    assert calls == [("first", 1, True), ("second", 2, True)]


async def test_call_after_not_run_on_rollback(database: Database) -> None:
    db = await items_db(database)
    calls: list[str] = []

    def fail_txn(txn: Txn) -> None:
        txn.call_after(calls.append, "x")
        raise Boom

    with pytest.raises(Boom):
        await db.run_txn("fail", fail_txn)
    assert calls == []


async def test_call_after_not_run_when_commit_fails(database: Database) -> None:
    """A deferred foreign key is only checked at COMMIT, on both engines."""

    def schema_txn(txn: Txn) -> None:
        txn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        txn.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER"
            " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )

    def orphan_txn(txn: Txn) -> None:
        txn.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")
        txn.call_after(calls.append, "committed")

    def count_txn(txn: Txn) -> int:
        txn.execute("SELECT COUNT(*) FROM child")
        row = txn.fetchone()
        assert row is not None
        return int(row[0])

    calls: list[str] = []
    await database.run_txn("schema", schema_txn)
    with pytest.raises(DB_ERRORS):
        await database.run_txn("orphan", orphan_txn)
    assert calls == []
    # The failed COMMIT left nothing behind and the writer still works.
    assert await database.run_txn("count", count_txn) == 0


async def test_failing_callback_is_logged_not_raised(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def bad() -> None:
        raise Boom("callback")

    def txn_fn(txn: Txn) -> int:
        txn.call_after(bad)
        return 7

    with caplog.at_level(logging.ERROR, logger="ranvier.storage.database"):
        assert await database.run_txn("cb", txn_fn) == 7
    assert "after-commit callback of transaction cb failed" in caplog.text


async def test_async_functions_are_rejected(database: Database) -> None:
    db = await items_db(database)

    async def async_txn(txn: Txn) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="sync"):
        _ = await db.run_txn("async", async_txn)

    async def later() -> None:
        return None

    def returns_coroutine_txn(txn: Txn) -> Coroutine[Any, Any, None]:
        insert_item_txn(txn, 1, "one")
        return later()

    with pytest.raises(TypeError, match="awaitable"):
        _ = await db.run_txn("coro", returns_coroutine_txn)
    assert await db.run_txn("names", get_names_txn) == []


async def test_retryable_error_reruns_whole_transaction(
    database: Database, db_engine: EngineName
) -> None:
    db = await items_db(database)
    attempts: list[int] = []
    callbacks: list[int] = []

    def flaky_txn(txn: Txn) -> str:
        attempts.append(len(attempts) + 1)
        insert_item_txn(txn, len(attempts), f"attempt{len(attempts)}")
        txn.call_after(callbacks.append, len(attempts))
        if len(attempts) == 1:
            raise retryable_error(db_engine)
        return "ok"

    assert await db.run_txn("flaky", flaky_txn) == "ok"
    assert attempts == [1, 2]
    assert callbacks == [2]
    assert await db.run_txn("names", get_names_txn) == ["attempt2"]


async def test_retries_are_bounded(
    database_settings: DatabaseSettings, db_engine: EngineName
) -> None:
    settings = dataclasses.replace(database_settings, max_txn_attempts=3)
    calls: list[str] = []

    def always_txn(txn: Txn, exc: Exception) -> None:
        calls.append("x")
        raise exc

    async with await open_database(settings) as db:
        with pytest.raises(type(retryable_error(db_engine))):
            await db.run_txn("always", always_txn, retryable_error(db_engine))
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(Boom):
            await db.run_txn("boom", always_txn, Boom())
        assert calls == ["x"]


async def test_slow_transactions_are_logged(
    database_settings: DatabaseSettings, caplog: pytest.LogCaptureFixture
) -> None:
    def noop_txn(txn: Txn) -> None:
        txn.execute("SELECT 1")

    caplog.set_level(logging.WARNING, logger="ranvier.storage.database")
    fast = dataclasses.replace(database_settings, slow_txn_seconds=3600.0)
    async with await open_database(fast) as db:
        await db.run_txn("quick_one", noop_txn)
    assert "slow transaction" not in caplog.text

    slow = dataclasses.replace(database_settings, slow_txn_seconds=0.0)
    async with await open_database(slow) as db:
        await db.run_txn("slow_one", noop_txn)
    assert "slow transaction slow_one" in caplog.text


async def test_closed_database_refuses_transactions(
    database_settings: DatabaseSettings,
) -> None:
    db = await open_database(database_settings)
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(DatabaseClosedError):
        await db.run_txn("late", get_names_txn)


async def test_in_memory_sqlite_routes_reads_to_the_writer() -> None:
    """SQLite only: an in-memory database cannot be shared between connections, so it
    has no reader connections (the PostgreSQL analogue does not exist)."""
    settings = DatabaseSettings(engine="sqlite", sqlite_path=":memory:")
    async with await open_database(settings) as db:
        await db.run_txn("create", create_items_txn)
        await db.run_txn("insert", insert_item_txn, 1, "one")
        assert await db.run_read_txn("names", get_names_txn) == ["one"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "mysql"}, "unknown database engine"),
        ({"engine": "postgres"}, "postgres_dsn is required"),
        ({"engine": "sqlite", "sqlite_path": ""}, "sqlite_path is required"),
        ({"pool_size": 0}, "pool_size"),
        ({"max_txn_attempts": 0}, "max_txn_attempts"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatabaseSettings(**kwargs)
