"""An asyncio lock per key (e.g. per room): work on one key is serial, keys run concurrently.

Locks exist only while someone holds or waits for them, so memory stays bounded by the
number of keys in use, not the number of keys ever seen.

    locks = KeyedLock()
    async with locks.lock(room_id):
        ...  # nobody else holds room_id's lock here
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Holders plus waiters: the entry is dropped when this falls to zero.
        self.users = 0


class KeyedLock:
    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    @asynccontextmanager
    async def lock(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def is_locked(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    def __len__(self) -> int:
        return len(self._entries)
