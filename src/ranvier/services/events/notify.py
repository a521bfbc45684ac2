"""What the ingest pipeline tells the rest of the server after an event is persisted.

`RoomEventNotifier` is the narrow seam (house rule 5): the sync notifier implements it
(`services/notifier.py`), and so can federation senders, pushers and counters later,
chained with `NotifierChain`. It is called after commit, once the event's stream position
is readable, outside the room's lock; it must not raise (failures are logged and
swallowed by the pipeline, since the event is already persisted).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ranvier.core.events.event import Event


class RoomEventNotifier(Protocol):
    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None: ...


class NullNotifier:
    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        return None


class NotifierChain:
    def __init__(self, *notifiers: RoomEventNotifier) -> None:
        self._notifiers = notifiers

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        users = tuple(extra_users)
        for n in self._notifiers:
            n.on_new_event(event, stream_ordering, extra_users=users)
