"""A small bounded LRU cache that is safe against racing invalidations.

A reader that loads from the database and then fills the cache can race a writer that
changed the row and invalidated the key meanwhile; the reader would put the stale value
back. Readers therefore take `generation()` before their query and fill with
`set_if_unchanged(key, value, generation)`, which drops the value if any invalidation
happened in between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max = max_size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._generation = 0

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def set(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def generation(self) -> int:
        return self._generation

    def set_if_unchanged(self, key: K, value: V, generation: int) -> None:
        if generation == self._generation:
            self.set(key, value)

    def invalidate(self, keys: Iterable[K]) -> None:
        self._generation += 1
        for key in keys:
            self._data.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
