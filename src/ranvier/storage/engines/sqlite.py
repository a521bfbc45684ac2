"""SQLite engine: one writer thread and connection, optional read-only connections.

SQLite allows one writer at a time, so every read-write transaction runs on a single
dedicated thread (a one-worker executor) owning the single writer connection: writes are
serialised in-process instead of fighting over the file lock, and `BEGIN IMMEDIATE` takes
the write lock up front so another process cannot make us fail half-way. In WAL mode
readers do not block the writer nor each other, so read-only transactions run on a small
pool of `query_only` connections in their own threads. An in-memory database cannot be
shared between connections, so it gets no readers and reads go to the writer.

A thread hop costs ~0.1 ms of CPU (executor queue, futex wake-ups, GIL hand-over, future
chaining) while a small indexed read costs a few microseconds, so one more `query_only`
connection serves `run_inline`: cheap reads run right on the event loop thread
(`Database` decides which; see its docstring). It waits at most
`INLINE_BUSY_TIMEOUT_MS` for a lock before giving the transaction back to the readers.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ranvier.storage.engines.base import InlineUnavailable
from ranvier.storage.sql import split_sqlite_script
from ranvier.storage.txn import (
    AUTOINCREMENT_PK_SQL,
    Cursor,
    EngineName,
    Txn,
    TxnOptions,
)

R = TypeVar("R")

# RETURNING arrived in 3.35 (2021); upsert (ON CONFLICT DO UPDATE) in 3.24.
MIN_SQLITE_VERSION = (3, 35, 0)
BUSY_TIMEOUT_SECONDS = 10.0
# A WAL reader only waits in rare cases (WAL recovery); never long on the loop thread.
INLINE_BUSY_TIMEOUT_MS = 20


class SqliteDialect:
    name: EngineName = "sqlite"
    autoincrement_pk = AUTOINCREMENT_PK_SQL["sqlite"]
    for_update = ""
    # BEGIN IMMEDIATE already holds the database-wide write lock.
    migration_lock_sql: str | None = None

    def convert_sql(self, sql: str) -> str:
        return sql

    def execute_script(self, cursor: Cursor, script: str) -> None:
        for statement in split_sqlite_script(script):
            cursor.execute(statement, ())

    def is_retryable(self, exc: BaseException) -> bool:
        # Only another process holding the write lock past busy_timeout gets here.
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(exc, sqlite3.OperationalError) and code == sqlite3.SQLITE_BUSY

    def in_list(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        if not values:
            return "1 = 0", []
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def _is_memory(path: str) -> bool:
    return (
        path == ":memory:" or path.startswith("file::memory:") or "mode=memory" in path
    )


class SqliteEngine:
    def __init__(self, path: str, readers: int) -> None:
        self._path = path
        self._dialect = SqliteDialect()
        self._writer_executor = ThreadPoolExecutor(
            1, thread_name_prefix="ranvier-sqlite-w"
        )
        self._writer: sqlite3.Connection | None = None
        self._reader_count = 0 if _is_memory(path) else readers
        self._reader_executor: ThreadPoolExecutor | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        # Used only by the event loop thread (`run_inline`).
        self._inline_reader: sqlite3.Connection | None = None

    @property
    def dialect(self) -> SqliteDialect:
        return self._dialect

    @classmethod
    async def open(cls, path: str, readers: int) -> SqliteEngine:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old; Ranvier needs "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer"
            )
        engine = cls(path, readers)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                engine._writer_executor, engine._open_connections
            )
        except BaseException:
            await engine.close()
            raise
        return engine

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit BEGIN/COMMIT from the sqlite3 module; we issue
        # them ourselves. check_same_thread=False because close() may run on another
        # thread; each connection is still only used by one thread at a time.
        return sqlite3.connect(
            self._path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
            uri=self._path.startswith("file:"),
        )

    def _open_connections(self) -> None:
        writer = self._connect()
        self._writer = writer
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA synchronous = NORMAL")
        writer.execute("PRAGMA foreign_keys = ON")
        for _ in range(self._reader_count):
            reader = self._connect()
            self._all_readers.append(reader)
            reader.execute("PRAGMA query_only = ON")
            self._readers.put(reader)
        if self._reader_count:
            inline = self._connect()
            self._all_readers.append(inline)
            inline.execute("PRAGMA query_only = ON")
            inline.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
            self._inline_reader = inline
            self._reader_executor = ThreadPoolExecutor(
                self._reader_count, thread_name_prefix="ranvier-sqlite-r"
            )

    def submit(self, fn: Callable[[Txn], R], options: TxnOptions) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        if options.readonly and self._reader_executor is not None:
            return loop.run_in_executor(self._reader_executor, self._run_read, fn)
        return loop.run_in_executor(self._writer_executor, self._run_write, fn)

    def can_run_inline(self, options: TxnOptions) -> bool:
        return options.readonly and self._inline_reader is not None

    def run_inline(self, fn: Callable[[Txn], R], options: TxnOptions) -> R:
        conn = self._inline_reader
        if conn is None or not options.readonly:
            raise InlineUnavailable("no inline reader connection")
        try:
            return self._run(conn, "BEGIN", fn)
        except sqlite3.OperationalError as exc:
            # Extended codes (SQLITE_BUSY_RECOVERY, ...) keep the primary code's low byte.
            primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise InlineUnavailable("database busy") from exc
            raise

    def _run_write(self, fn: Callable[[Txn], R]) -> R:
        assert self._writer is not None
        return self._run(self._writer, "BEGIN IMMEDIATE", fn)

    def _run_read(self, fn: Callable[[Txn], R]) -> R:
        # Never empty: there are as many connections as reader threads.
        conn = self._readers.get_nowait()
        try:
            return self._run(conn, "BEGIN", fn)
        finally:
            self._readers.put(conn)

    def _run(self, conn: sqlite3.Connection, begin: str, fn: Callable[[Txn], R]) -> R:
        cursor = conn.cursor()
        try:
            cursor.execute(begin)
            result = fn(Txn(cursor, self._dialect))
            cursor.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (e.g. a deferred foreign key) leaves the transaction open;
            # some errors (SQLITE_FULL, ...) have already rolled it back.
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cursor.close()
        return result

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        # shutdown(wait=True) lets running and queued transactions finish first.
        self._writer_executor.shutdown(wait=True)
        if self._reader_executor is not None:
            self._reader_executor.shutdown(wait=True)
        for conn in self._all_readers:
            conn.close()
        self._all_readers.clear()
        self._inline_reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
