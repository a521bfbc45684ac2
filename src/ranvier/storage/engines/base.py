"""What `Database` needs from an engine: run a transaction function on a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from ranvier.storage.txn import Dialect, Txn, TxnOptions

R = TypeVar("R")


class Engine(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def submit(self, fn: Callable[[Txn], R], options: TxnOptions) -> asyncio.Future[R]:
        """Start `fn` in one transaction on a worker thread; must be called on the loop.

        The future resolves after COMMIT, or fails after ROLLBACK with `fn`'s (or the
        commit's) exception. Cancelling the future does not stop a running transaction.
        """
        ...

    async def close(self) -> None:
        """Wait for submitted transactions, then close every connection and thread."""
        ...
