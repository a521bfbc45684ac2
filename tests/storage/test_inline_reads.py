"""Inline read transactions: cheap reads on the event loop thread (SQLite), the rest on
reader threads, chosen per transaction name from measured run times."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ranvier.storage.database import (
    Database,
    DatabaseSettings,
    InlinePolicy,
    open_database,
)
from ranvier.storage.engines.base import InlineUnavailable
from ranvier.storage.engines.sqlite import SqliteEngine
from ranvier.storage.txn import Txn, TxnOptions


def thread_id_txn(txn: Txn) -> int:
    txn.execute("SELECT 1")
    txn.fetchall()
    return threading.get_ident()


def test_policy_starts_inline_and_follows_the_average() -> None:
    policy = InlinePolicy(budget_seconds=0.001)
    assert policy.allows("read")
    policy.record("read", 0.010)
    assert not policy.allows("read")
    for _ in range(40):
        policy.record("read", 0.0001)
    assert policy.allows("read")
    assert policy.allows("other")


async def test_sqlite_cheap_read_runs_on_loop_thread(tmp_path: Path) -> None:
    settings = DatabaseSettings(sqlite_path=str(tmp_path / "db.sqlite"), pool_size=2)
    async with await open_database(settings) as db:
        assert await db.run_read_txn("cheap", thread_id_txn) == threading.get_ident()
        # Writes always go to the writer thread.
        assert await db.run_txn("write", thread_id_txn) != threading.get_ident()


async def test_slow_read_moves_to_reader_threads(tmp_path: Path) -> None:
    def slow_txn(txn: Txn) -> int:
        time.sleep(0.005)
        return thread_id_txn(txn)

    settings = DatabaseSettings(sqlite_path=str(tmp_path / "db.sqlite"), pool_size=2)
    async with await open_database(settings) as db:
        loop_thread = threading.get_ident()
        assert await db.run_read_txn("slow", slow_txn) == loop_thread  # measured once
        assert await db.run_read_txn("slow", slow_txn) != loop_thread
        assert await db.run_read_txn("cheap", thread_id_txn) == loop_thread


async def test_in_memory_sqlite_never_runs_inline() -> None:
    settings = DatabaseSettings(sqlite_path=":memory:", pool_size=2)
    async with await open_database(settings) as db:
        assert await db.run_read_txn("cheap", thread_id_txn) != threading.get_ident()


async def test_busy_inline_read_falls_back_to_a_reader_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DatabaseSettings(sqlite_path=str(tmp_path / "db.sqlite"), pool_size=2)
    async with await open_database(settings) as db:

        def busy(self: SqliteEngine, fn: object, options: TxnOptions) -> None:
            raise InlineUnavailable("database busy")

        monkeypatch.setattr(SqliteEngine, "run_inline", busy)
        assert await db.run_read_txn("cheap", thread_id_txn) != threading.get_ident()


async def test_inline_read_errors_reach_the_caller(database: Database) -> None:
    def broken_txn(txn: Txn) -> None:
        txn.execute("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        await database.run_read_txn("broken", broken_txn)


async def test_sqlite_busy_inline_raises_inline_unavailable(tmp_path: Path) -> None:
    engine = await SqliteEngine.open(str(tmp_path / "db.sqlite"), 1)
    try:

        def busy_txn(txn: Txn) -> None:
            raise sqlite3.OperationalError("database is locked")

        err = sqlite3.OperationalError("database is locked")
        err.sqlite_errorcode = sqlite3.SQLITE_BUSY

        def raise_busy(txn: Txn) -> None:
            raise err

        with pytest.raises(InlineUnavailable):
            engine.run_inline(raise_busy, TxnOptions(readonly=True))
        with pytest.raises(sqlite3.OperationalError):
            engine.run_inline(busy_txn, TxnOptions(readonly=True))
    finally:
        await engine.close()
