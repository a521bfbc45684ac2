"""Time as an injected dependency (house rule 12): tests swap in a fake clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time_msec(self) -> int: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def time_msec(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock tests advance by hand; `sleep` waits until the clock is advanced past it."""

    def __init__(self, start_msec: int = 1_700_000_000_000) -> None:
        self._now_msec = start_msec
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def time_msec(self) -> int:
        return self._now_msec

    def monotonic(self) -> float:
        return self._now_msec / 1000

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._now_msec + int(seconds * 1000), fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._now_msec += int(seconds * 1000)
        still: list[tuple[int, asyncio.Future[None]]] = []
        for deadline, fut in self._waiters:
            if deadline <= self._now_msec:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((deadline, fut))
        self._waiters = still
