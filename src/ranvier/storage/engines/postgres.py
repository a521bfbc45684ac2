"""PostgreSQL engine: psycopg 3's sync API, a connection pool and as many threads.

Transaction functions are sync and run on a thread pool with one thread per pooled
connection, so a thread never waits for a connection. Each transaction starts with the
isolation level (and READ ONLY flag) it asked for; READ COMMITTED is the default.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from ranvier.storage.engines.base import InlineUnavailable
from ranvier.storage.sql import qmark_to_format
from ranvier.storage.txn import (
    AUTOINCREMENT_PK_SQL,
    Cursor,
    EngineName,
    Isolation,
    Txn,
    TxnOptions,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")

_ISOLATION = {
    Isolation.READ_COMMITTED: psycopg.IsolationLevel.READ_COMMITTED,
    Isolation.REPEATABLE_READ: psycopg.IsolationLevel.REPEATABLE_READ,
}

# Arbitrary constant key for pg_advisory_xact_lock ("ranvier" in ASCII).
_MIGRATION_LOCK_KEY = 0x72616E76696572

CONNECT_TIMEOUT_SECONDS = 10.0


class PostgresDialect:
    name: EngineName = "postgres"
    autoincrement_pk = AUTOINCREMENT_PK_SQL["postgres"]
    for_update = " FOR UPDATE"
    migration_lock_sql: str | None = (
        f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"
    )

    def convert_sql(self, sql: str) -> str:
        return qmark_to_format(sql)

    def execute_script(self, cursor: Cursor, script: str) -> None:
        # No parameters: psycopg sends the text untouched (no `%` parsing) and the server
        # accepts several statements in one simple query.
        cast("psycopg.Cursor[Any]", cursor).execute(script.encode())

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(
            exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected
        )

    def in_list(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        if not values:
            return "1 = 0", []
        # One array parameter: one prepared statement whatever the number of values.
        return f"{column} = ANY(?)", [list(values)]


class PostgresEngine:
    def __init__(self, dsn: str, pool_size: int) -> None:
        self._dialect = PostgresDialect()
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = (
            ConnectionPool(
                dsn,
                min_size=pool_size,
                max_size=pool_size,
                open=False,
                name="ranvier",
                kwargs={"autocommit": False, "application_name": "ranvier"},
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
        )
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="ranvier-pg")

    @property
    def dialect(self) -> PostgresDialect:
        return self._dialect

    @classmethod
    async def open(cls, dsn: str, pool_size: int) -> PostgresEngine:
        engine = cls(dsn, pool_size)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                engine._executor, engine._open_pool, CONNECT_TIMEOUT_SECONDS
            )
        except BaseException:
            await engine.close()
            raise
        return engine

    def _open_pool(self, timeout: float) -> None:
        self._pool.open(wait=True, timeout=timeout)

    def submit(self, fn: Callable[[Txn], R], options: TxnOptions) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._run, fn, options)

    def can_run_inline(self, options: TxnOptions) -> bool:
        # Every statement is a network round trip: never on the event loop thread.
        return False

    def run_inline(self, fn: Callable[[Txn], R], options: TxnOptions) -> R:
        raise InlineUnavailable("PostgreSQL transactions always run on a thread")

    def _run(self, fn: Callable[[Txn], R], options: TxnOptions) -> R:
        conn = self._pool.getconn()
        try:
            # Only settable between transactions; psycopg puts them in its next BEGIN.
            isolation = _ISOLATION[options.isolation]
            if conn.isolation_level != isolation:
                conn.isolation_level = isolation
            if conn.read_only != options.readonly:
                conn.read_only = options.readonly
            return self._run_on(conn, fn)
        finally:
            # A broken connection is discarded here and replaced by the pool.
            self._pool.putconn(conn)

    def _run_on(
        self, conn: psycopg.Connection[tuple[Any, ...]], fn: Callable[[Txn], R]
    ) -> R:
        try:
            with conn.cursor() as cursor:
                result = fn(Txn(cursor, self._dialect))
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except psycopg.Error:
                # The connection is gone; the original error is the one worth raising.
                logger.debug("rollback failed", exc_info=True)
            raise
        return result

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        self._pool.close()
