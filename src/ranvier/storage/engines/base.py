"""What `Database` needs from an engine: run a transaction function on a worker thread
(or, for cheap reads where the engine allows it, right on the event loop thread)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from ranvier.storage.txn import Dialect, Txn, TxnOptions

R = TypeVar("R")


class InlineUnavailable(Exception):
    """`run_inline` could not run the transaction now (e.g. the database was busy);
    the caller submits it to a worker thread instead. Nothing was changed."""


class Engine(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def submit(self, fn: Callable[[Txn], R], options: TxnOptions) -> asyncio.Future[R]:
        """Start `fn` in one transaction on a worker thread; must be called on the loop.

        The future resolves after COMMIT, or fails after ROLLBACK with `fn`'s (or the
        commit's) exception. Cancelling the future does not stop a running transaction.
        """
        ...

    def can_run_inline(self, options: TxnOptions) -> bool:
        """True if `run_inline` may be used for a transaction with these options."""
        ...

    def run_inline(self, fn: Callable[[Txn], R], options: TxnOptions) -> R:
        """Run `fn` in one read-only transaction on the calling (event loop) thread.

        Only for engines where that costs less than a thread hop (SQLite: a local
        read is a few microseconds, a hop ~0.1 ms). Raises `InlineUnavailable` when it
        cannot run without waiting; any other exception is `fn`'s.
        """
        ...

    async def close(self) -> None:
        """Wait for submitted transactions, then close every connection and thread."""
        ...
