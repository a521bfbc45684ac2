"""The notifier: wakes long-polling `/sync` requests the moment a stream moves for them.

Spec: Client-Server API > Syncing (`timeout`). DESIGN.md "A client syncs".

Every waiting sync registers a `Listener` under the keys it cares about: its user, its
device and every room it is joined to. A write (event persisted, typing, receipt,
account data, presence, to-device, device-list change) calls `notify(stream, position,
users=…, rooms=…, devices=…)`, which wakes only the listeners registered under those keys:
hundreds of idle syncs cost nothing when someone types in an unrelated room.

Positions come from the stores' `StreamIdGenerator`s through `StreamSources`: a reader
only ever sees positions below which everything is persisted. A write that completes out
of order (position 11 before 10) cannot be seen yet, so its wake-up is held back until
the stream's current position reaches it; the write that fills the gap releases it.

The race between "compute, find nothing, go to sleep" and a write landing in between is
closed by order: a sync registers its listener *before* reading the current token, so a
write either is below that token (and in the result) or wakes the listener afterwards.

Multi-process seam: `WakeupRelay` carries wake-ups between processes sharing one
database (PostgreSQL LISTEN/NOTIFY or Redis pub/sub). One process needs none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ranvier.core.events.event import Event
from ranvier.core.streams import StreamKey, SyncToken
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

# ("user", user_id) | ("room", room_id) | ("device", "user_id|device_id")
WakeKey = tuple[str, str]
PositionSource = Callable[[], int]

_MAX_HELD = 10_000
# Rooms remembered by the room change cache before it starts over.
_MAX_TRACKED_ROOMS = 200_000


def user_key(user_id: str) -> WakeKey:
    return ("user", user_id)


def room_key(room_id: str) -> WakeKey:
    return ("room", room_id)


def device_key(user_id: str, device_id: str) -> WakeKey:
    return ("device", f"{user_id}|{device_id}")


@dataclass(frozen=True, slots=True)
class Wakeup:
    """One stream movement and who it concerns."""

    stream: StreamKey
    position: int
    keys: frozenset[WakeKey]


class WakeupRelay(Protocol):
    """Carries wake-ups to the other processes (multi-process deployments only)."""

    def publish(self, wakeup: Wakeup) -> None: ...


class StreamSources:
    """Where the current position of each stream is read from."""

    def __init__(
        self, sources: Mapping[StreamKey, PositionSource] | None = None
    ) -> None:
        self._sources: dict[StreamKey, PositionSource] = dict(sources or {})

    def register(self, stream: StreamKey, source: PositionSource) -> None:
        self._sources[stream] = source

    def has(self, stream: StreamKey) -> bool:
        return stream in self._sources

    def position(self, stream: StreamKey) -> int:
        source = self._sources.get(stream)
        return source() if source is not None else 0

    def current_token(self) -> SyncToken:
        return SyncToken(
            **{key.value: self.position(key) for key in StreamKey},
        )


class Listener:
    """One waiting sync. Re-armed after each wake-up; closed when the request ends."""

    __slots__ = ("_clock", "_keys", "_notifier", "_woken")

    def __init__(self, notifier: Notifier, clock: Clock) -> None:
        self._notifier = notifier
        self._clock = clock
        self._keys: frozenset[WakeKey] = frozenset()
        self._woken = asyncio.Event()

    @property
    def keys(self) -> frozenset[WakeKey]:
        return self._keys

    def set_keys(self, keys: Iterable[WakeKey]) -> None:
        new = frozenset(keys)
        if new != self._keys:
            self._notifier.move_listener(self, self._keys, new)
            self._keys = new

    def wake(self) -> None:
        self._woken.set()

    def rearm(self) -> None:
        """Forget earlier wake-ups; call before reading the current token."""
        self._woken.clear()

    def is_woken(self) -> bool:
        return self._woken.is_set()

    async def wait(self, timeout_seconds: float) -> bool:
        """True if woken, False on timeout."""
        if self._woken.is_set():
            return True
        if timeout_seconds <= 0:
            return False
        woken = asyncio.ensure_future(self._woken.wait())
        timer = asyncio.ensure_future(self._clock.sleep(timeout_seconds))
        self._notifier.waiting += 1
        try:
            await asyncio.wait({woken, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._notifier.waiting -= 1
            woken.cancel()
            timer.cancel()
        return self._woken.is_set()

    def close(self) -> None:
        self.set_keys(())


class Notifier:
    def __init__(
        self, clock: Clock, sources: StreamSources, relay: WakeupRelay | None = None
    ) -> None:
        self._clock = clock
        self._sources = sources
        self._relay = relay
        self._listeners: dict[WakeKey, set[Listener]] = {}
        # Wake-ups whose position is not readable yet (an earlier write is in flight).
        self._held: dict[StreamKey, list[Wakeup]] = {}
        self._closed = False
        # Listeners blocked in `wait` now (long-polling syncs), for metrics.
        self.waiting = 0
        # Room change cache: the last event position per room, complete for positions
        # above `_rooms_floor` (None: not tracking yet).
        self._room_last_event: dict[str, int] = {}
        self._rooms_floor: int | None = None

    # -- positions -------------------------------------------------------------------------
    def current_token(self) -> SyncToken:
        return self._sources.current_token()

    @property
    def sources(self) -> StreamSources:
        return self._sources

    # -- listening -------------------------------------------------------------------------
    def listen(self) -> Listener:
        listener = Listener(self, self._clock)
        if self._closed:
            listener.wake()
        return listener

    def close(self) -> None:
        """Shutting down: answer every waiting sync now (and any later one at once), so
        a graceful shutdown does not wait out long-polls."""
        self._closed = True
        for bucket in self._listeners.values():
            for listener in bucket:
                listener.wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def move_listener(
        self, listener: Listener, old: frozenset[WakeKey], new: frozenset[WakeKey]
    ) -> None:
        for key in old - new:
            bucket = self._listeners.get(key)
            if bucket is not None:
                bucket.discard(listener)
                if not bucket:
                    del self._listeners[key]
        for key in new - old:
            self._listeners.setdefault(key, set()).add(listener)

    @property
    def listener_count(self) -> int:
        return len({lst for bucket in self._listeners.values() for lst in bucket})

    # -- notifying -------------------------------------------------------------------------
    def notify(
        self,
        stream: StreamKey,
        position: int,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
        devices: Iterable[tuple[str, str]] = (),
    ) -> None:
        keys = frozenset(
            [
                *(user_key(u) for u in users),
                *(room_key(r) for r in rooms),
                *(device_key(u, d) for u, d in devices),
            ]
        )
        wakeup = Wakeup(stream, position, keys)
        if self._relay is not None:
            self._relay.publish(wakeup)
        self.notify_local(wakeup)

    def notify_local(self, wakeup: Wakeup) -> None:
        """Deliver a wake-up in this process (the relay's subscriber calls this too)."""
        held = self._held.setdefault(wakeup.stream, [])
        held.append(wakeup)
        current = self._sources.position(wakeup.stream)
        if not self._sources.has(wakeup.stream) or len(held) > _MAX_HELD:
            # No position to wait for (or a writer never completed): wake now rather
            # than hold forever; a woken sync that finds nothing just waits again.
            current = max(w.position for w in held)
        ready = [w for w in held if w.position <= current]
        if len(ready) != len(held):
            self._held[wakeup.stream] = [w for w in held if w.position > current]
        else:
            del self._held[wakeup.stream]
        for w in ready:
            self._wake(w.keys)

    def _wake(self, keys: Iterable[WakeKey]) -> None:
        for key in keys:
            for listener in self._listeners.get(key, ()):
                listener.wake()

    # -- room change cache ---------------------------------------------------------------------
    def track_room_changes(self, from_position: int) -> None:
        """Start remembering which rooms got events after `from_position`."""
        self._rooms_floor = from_position
        self._room_last_event.clear()

    def rooms_changed_since(
        self, room_ids: Iterable[str], position: int
    ) -> set[str] | None:
        """Those of `room_ids` with an event after `position`, or None when the cache
        cannot tell (it started later): the caller then asks the database."""
        floor = self._rooms_floor
        if floor is None or position < floor:
            return None
        last = self._room_last_event
        return {r for r in room_ids if last.get(r, 0) > position}

    def _room_changed(self, room_id: str, position: int) -> None:
        if self._rooms_floor is None:
            return
        if len(self._room_last_event) >= _MAX_TRACKED_ROOMS:
            self.track_room_changes(max(self._room_last_event.values()))
        if position > self._room_last_event.get(room_id, 0):
            self._room_last_event[room_id] = position

    def on_new_event(
        self,
        event: Event,
        stream_ordering: int,
        *,
        extra_users: Iterable[str] = (),
    ) -> None:
        """A room event was persisted (called by the ingest pipeline after commit).

        Everyone listening on the room wakes; so does the target of a membership event,
        who may not be listening on the room yet (invite, join from another device) or
        any more (kick, ban).
        """
        self._room_changed(event.room_id, stream_ordering)
        users = set(extra_users)
        if event.type == "m.room.member" and event.state_key is not None:
            users.add(event.state_key)
        self.notify(
            StreamKey.EVENTS, stream_ordering, users=users, rooms=(event.room_id,)
        )
