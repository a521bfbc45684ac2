"""`Database`: run named sync transaction functions on an engine's worker threads.

A transaction function is a plain `def something_txn(txn: Txn, ...) -> R`. It runs on a
worker thread inside exactly one transaction: committed when it returns, rolled back when
it raises. Nothing awaits inside it (house rule 6), so the event loop never waits on a
lock held across a network round trip. Serialization failures and deadlocks (PostgreSQL)
rerun the whole function, so it must not have side effects outside the database; work
that must follow the commit goes through `txn.call_after`.

Read-only transactions may run *inline*, on the event loop thread, where the engine
allows it (SQLite): a thread hop costs ~0.1 ms of CPU and a scheduler wake-up on a busy
machine, far more than most reads. Which reads run inline is learnt per transaction
name: a moving average of each name's run time (measured wherever it ran) keeps names
averaging over `INLINE_BUDGET_SECONDS` on the reader threads, so heavy reads never hold
the loop for long.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from ranvier.storage.engines.base import Engine, InlineUnavailable
from ranvier.storage.engines.sqlite import SqliteEngine
from ranvier.storage.migrations import apply_migrations, bundled_schema, load_deltas
from ranvier.storage.txn import Dialect, EngineName, Isolation, Txn, TxnOptions

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_READ_WRITE = TxnOptions()
_READ_ONLY = TxnOptions(readonly=True)

_MAX_RETRY_DELAY = 0.5

# Reads averaging less than this run on the event loop thread (engines that allow it).
INLINE_BUDGET_SECONDS = 0.001
# Weight of the newest run time in a name's moving average.
_INLINE_EWMA_WEIGHT = 0.2

AfterCallbacks = list[Callable[[], object]]


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """What storage needs to open a database; the app maps the config onto it."""

    engine: EngineName = "sqlite"
    sqlite_path: str = "ranvier.db"
    postgres_dsn: str = ""
    # PostgreSQL: connections and threads. SQLite: read-only connections beside the writer.
    pool_size: int = 10
    slow_txn_seconds: float = 1.0
    max_txn_attempts: int = 5

    def __post_init__(self) -> None:
        if self.engine not in ("sqlite", "postgres"):
            raise ValueError(f"unknown database engine {self.engine!r}")
        if self.engine == "postgres" and not self.postgres_dsn:
            raise ValueError("postgres_dsn is required for the postgres engine")
        if self.engine == "sqlite" and not self.sqlite_path:
            raise ValueError("sqlite_path is required for the sqlite engine")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if self.max_txn_attempts < 1:
            raise ValueError("max_txn_attempts must be at least 1")


class DatabaseClosedError(RuntimeError):
    pass


class _Timing:
    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started: float | None = None


class InlinePolicy:
    """Which read transactions run inline: those whose names average under the budget.

    A name starts inline (its first run measures it). Its average is updated after
    every run, inline or threaded, so a name that got slow moves to the threads and
    one that got fast again comes back.
    """

    __slots__ = ("_budget", "_costs")

    def __init__(self, budget_seconds: float = INLINE_BUDGET_SECONDS) -> None:
        self._budget = budget_seconds
        self._costs: dict[str, float] = {}

    def allows(self, name: str) -> bool:
        return self._costs.get(name, 0.0) < self._budget

    def record(self, name: str, seconds: float) -> None:
        # Called from reader threads too: a lost update only delays the estimate.
        old = self._costs.get(name)
        self._costs[name] = (
            seconds if old is None else old + _INLINE_EWMA_WEIGHT * (seconds - old)
        )


class Database:
    def __init__(
        self,
        engine: Engine,
        *,
        slow_txn_seconds: float = 1.0,
        max_txn_attempts: int = 5,
        retry_delay_seconds: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        inline_budget_seconds: float = INLINE_BUDGET_SECONDS,
    ) -> None:
        self._engine = engine
        self._inline = InlinePolicy(inline_budget_seconds)
        self._slow_txn_seconds = slow_txn_seconds
        self._max_attempts = max_txn_attempts
        self._retry_delay = retry_delay_seconds
        self._clock = clock
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Transactions whose caller was cancelled: they still run and commit.
        self._orphans: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._closed = asyncio.Event()
        # Told of every transaction (name, seconds including retries, succeeded): metrics.
        self.txn_observer: Callable[[str, float, bool], None] | None = None

    @property
    def active_transactions(self) -> int:
        """Transactions running or waiting for a connection (metrics)."""
        return self._active

    @property
    def engine(self) -> Dialect:
        return self._engine.dialect

    async def run_txn(
        self,
        name: str,
        fn: Callable[Concatenate[Txn, P], R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `fn(txn, *args, **kwargs)` in one read-write transaction.

        `name` and `fn` are positional-only so that any keyword reaches `fn`.
        """
        return await self._run(name, _READ_WRITE, _bind(fn, *args, **kwargs))

    async def run_read_txn(
        self,
        name: str,
        fn: Callable[Concatenate[Txn, P], R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `fn` in a read-only transaction; on SQLite, beside the writer thread."""
        return await self._run(name, _READ_ONLY, _bind(fn, *args, **kwargs))

    async def run_txn_with(
        self,
        name: str,
        options: TxnOptions,
        fn: Callable[Concatenate[Txn, P], R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `fn` with explicit options, e.g. `TxnOptions(isolation=REPEATABLE_READ)`."""
        return await self._run(name, options, _bind(fn, *args, **kwargs))

    async def _run(self, name: str, options: TxnOptions, call: Callable[[Txn], R]) -> R:
        if self._closing:
            raise DatabaseClosedError(f"database closed; cannot run transaction {name}")
        self._active += 1
        self._idle.clear()
        started = time.perf_counter()
        ok = False
        try:
            result = await self._run_attempts(name, options, call)
            ok = True
            return result
        finally:
            if self.txn_observer is not None:
                self.txn_observer(name, time.perf_counter() - started, ok)
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _run_attempts(
        self, name: str, options: TxnOptions, call: Callable[[Txn], R]
    ) -> R:
        attempt = 1
        while True:
            try:
                return await self._run_once(name, options, call, attempt)
            except Exception as exc:
                retry = attempt < self._max_attempts and self.engine.is_retryable(exc)
                if not retry:
                    raise
                logger.info(
                    "transaction %s: %s, retrying (attempt %d of %d)",
                    name,
                    type(exc).__name__,
                    attempt + 1,
                    self._max_attempts,
                )
            # Exponential backoff lets the conflicting transaction finish first.
            await asyncio.sleep(
                min(self._retry_delay * 2 ** (attempt - 1), _MAX_RETRY_DELAY)
            )
            attempt += 1

    async def _run_once(
        self, name: str, options: TxnOptions, call: Callable[[Txn], R], attempt: int
    ) -> R:
        timing = _Timing()
        readonly = options.readonly

        def body(txn: Txn) -> tuple[R, AfterCallbacks]:
            timing.started = self._clock()
            started = time.perf_counter()
            result = call(txn)
            _reject_awaitable(name, result)
            if readonly:
                self._inline.record(name, time.perf_counter() - started)
            return result, txn.after_callbacks()

        submitted = self._clock()
        if (
            readonly
            and self._inline.allows(name)
            and self._engine.can_run_inline(options)
        ):
            try:
                result, callbacks = self._engine.run_inline(body, options)
            except InlineUnavailable:
                pass  # run it on a reader thread below
            except Exception:
                self._log_if_slow(name, attempt, submitted, timing.started)
                raise
            else:
                self._log_if_slow(name, attempt, submitted, timing.started)
                self._run_callbacks(name, callbacks)
                return result
        future = self._engine.submit(body, options)
        try:
            result, callbacks = await asyncio.shield(future)
        except asyncio.CancelledError:
            self._adopt(name, future)
            raise
        except Exception:
            self._log_if_slow(name, attempt, submitted, timing.started)
            raise
        self._log_if_slow(name, attempt, submitted, timing.started)
        self._run_callbacks(name, callbacks)
        return result

    def _log_if_slow(
        self, name: str, attempt: int, submitted: float, started: float | None
    ) -> None:
        total = self._clock() - submitted
        if total < self._slow_txn_seconds:
            return
        queued = (started if started is not None else submitted) - submitted
        logger.warning(
            "slow transaction %s: %.1f ms (%.1f ms waiting for its thread), attempt %d",
            name,
            total * 1000,
            queued * 1000,
            attempt,
        )

    def _adopt(
        self, name: str, future: asyncio.Future[tuple[Any, AfterCallbacks]]
    ) -> None:
        """Keep the cancelled caller's transaction: it may still commit, and its
        after-commit callbacks must then run all the same."""
        self._orphans.add(future)
        future.add_done_callback(functools.partial(self._orphan_done, name))

    def _orphan_done(
        self, name: str, future: asyncio.Future[tuple[Any, AfterCallbacks]]
    ) -> None:
        self._orphans.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            logger.warning("transaction %s (caller cancelled) failed: %r", name, exc)
            return
        self._run_callbacks(name, future.result()[1])

    def _run_callbacks(self, name: str, callbacks: AfterCallbacks) -> None:
        # The transaction is committed: a failing callback must not make the caller
        # believe otherwise (and perhaps write again), so it is logged, not raised.
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("after-commit callback of transaction %s failed", name)

    async def close(self) -> None:
        """Refuse new transactions, wait for running ones, close connections."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            await self._idle.wait()
            if self._orphans:
                await asyncio.wait(set(self._orphans))
            await self._engine.close()
        finally:
            self._closed.set()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _bind(
    fn: Callable[Concatenate[Txn, P], R], /, *args: P.args, **kwargs: P.kwargs
) -> Callable[[Txn], R]:
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"transaction functions must be sync, not async: {fn!r}")

    def call(txn: Txn) -> R:
        return fn(txn, *args, **kwargs)

    return call


def _reject_awaitable(name: str, result: object) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(f"transaction {name} returned an awaitable; it must be sync")


async def open_engine(settings: DatabaseSettings) -> Engine:
    if settings.engine == "postgres":
        # Imported here so that SQLite-only deployments never load psycopg.
        from ranvier.storage.engines.postgres import PostgresEngine

        return await PostgresEngine.open(settings.postgres_dsn, settings.pool_size)
    return await SqliteEngine.open(settings.sqlite_path, settings.pool_size)


async def open_database(
    settings: DatabaseSettings, *, schema: Traversable | None = None
) -> Database:
    """Open the engine and bring the schema up to date (the bundled deltas by default).

    Raises `SchemaTooNewError` if the database was migrated by a newer Ranvier.
    """
    engine = await open_engine(settings)
    db = Database(
        engine,
        slow_txn_seconds=settings.slow_txn_seconds,
        max_txn_attempts=settings.max_txn_attempts,
    )
    try:
        deltas = load_deltas(
            schema if schema is not None else bundled_schema(), engine.dialect.name
        )
        await apply_migrations(db, deltas)
    except BaseException:
        await db.close()
        raise
    return db


__all__ = [
    "Database",
    "DatabaseClosedError",
    "DatabaseSettings",
    "Isolation",
    "TxnOptions",
    "open_database",
    "open_engine",
]
