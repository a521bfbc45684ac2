"""Stream position allocation whose positions become visible to readers in order.

Every stream (room events, later to-device messages, receipts, ...) hands out increasing
integer positions. Writers persist concurrently (rooms are independent; on PostgreSQL two
rooms' transactions really do overlap), so position 7 may commit before position 6. A
reader that saw 7 and moved its `since` token to 7 would then never see 6. Hence:

* `allocate()` hands out the next position and records it as *in flight*;
* `complete(pos)` is called once the transaction using it has committed, or failed (a
  failed position just becomes a harmless gap);
* `get_current_token()` is the largest position P such that no position <= P is still in
  flight. Readers (sync, /messages) only ever read up to it, and the notifier is told
  about new positions only after `complete`, so a wake-up never exposes a hole.

This allocator is in-process: correct for one writer process on either engine. When
several processes write the same stream they need a shared allocator (a PostgreSQL
SEQUENCE per stream plus a `stream_positions(stream, instance, position)` table, each
reader taking the minimum over writers): the interface here is the seam for that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class StreamIdGenerator:
    def __init__(self, current: int) -> None:
        self._last_allocated = current
        self._current = current
        self._in_flight: set[int] = set()

    def allocate(self) -> int:
        self._last_allocated += 1
        self._in_flight.add(self._last_allocated)
        return self._last_allocated

    def complete(self, position: int) -> None:
        self._in_flight.discard(position)
        self._current = (
            min(self._in_flight) - 1 if self._in_flight else self._last_allocated
        )

    @contextmanager
    def allocating(self) -> Iterator[int]:
        """`with gen.allocating() as pos:` -- completed on exit, whether or not it committed."""
        pos = self.allocate()
        try:
            yield pos
        finally:
            self.complete(pos)

    def get_current_token(self) -> int:
        """The highest position readers may see: everything at or below it is persisted."""
        return self._current

    @property
    def last_allocated(self) -> int:
        return self._last_allocated
