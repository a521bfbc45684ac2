"""What every pusher worker shares: its row, its delivery position and its wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ranvier.services.push.content import NotificationContent
from ranvier.storage.stores.push import PushActionRow
from ranvier.storage.stores.pushers import PusherRow
from ranvier.util.clock import Clock

PusherKey = tuple[str, str, str]


class UnreadActions(Protocol):
    async def get_unread_after(
        self, user_id: str, after: int, limit: int
    ) -> tuple[list[PushActionRow], int]: ...


class BadgeCounts(Protocol):
    async def get_badge_count(self, user_id: str) -> int: ...


class ProgressStore(Protocol):
    async def update_progress(
        self,
        key: PusherKey,
        *,
        last_stream_ordering: int,
        last_success_ts: int | None,
        failing_since: int | None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class PusherDeps:
    progress: ProgressStore
    actions: UnreadActions
    counts: BadgeCounts
    content: NotificationContent
    clock: Clock
    # A gateway rejected the pushkey: delete the pusher (which stops the worker).
    rejected: Callable[[PusherKey], Awaitable[None]]


class PusherWorker:
    """Base: position bookkeeping and wake-ups; subclasses implement `run`."""

    def __init__(self, row: PusherRow, deps: PusherDeps) -> None:
        self.row = row
        self._deps = deps
        self._position = row.last_stream_ordering
        self._last_success = row.last_success_ts
        self._failing_since = row.failing_since
        self._wake = asyncio.Event()
        # Something may be waiting since before a restart.
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def on_read(self) -> None:
        """A read receipt of the user: counts changed."""
        self._wake.set()

    async def run(self) -> None:
        raise NotImplementedError

    async def _wait(self, seconds: float | None) -> None:
        """Until woken or (with `seconds`) that much time has passed on the clock."""
        if seconds is None:
            await self._wake.wait()
        else:
            sleeper = asyncio.ensure_future(self._deps.clock.sleep(seconds))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {sleeper, waker}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                sleeper.cancel()
                waker.cancel()
        self._wake.clear()

    async def _unread(self, limit: int) -> tuple[list[PushActionRow], int]:
        return await self._deps.actions.get_unread_after(
            self.row.user_id, self._position, limit
        )

    async def _save(self) -> None:
        await self._deps.progress.update_progress(
            self.row.key,
            last_stream_ordering=self._position,
            last_success_ts=self._last_success,
            failing_since=self._failing_since,
        )

    def _failed(self) -> int:
        """Mark a failure; how long (ms) deliveries have been failing."""
        now = self._deps.clock.time_msec()
        if self._failing_since is None:
            self._failing_since = now
        return now - self._failing_since

    def _succeeded(self) -> None:
        self._failing_since = None
        self._last_success = self._deps.clock.time_msec()


def max_position(rows: Sequence[PushActionRow], default: int) -> int:
    return max((r.stream_ordering for r in rows), default=default)
