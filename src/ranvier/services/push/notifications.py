"""`GET /notifications` (spec: Push Notifications > Listing notifications): the events
the user was notified about, newest first, with whether each has been read."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ranvier.core.errors import invalid_param
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.push import PushStore
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class EventsSource(Protocol):
    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]: ...


class EventSerializer(Protocol):
    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
    ) -> list[JsonDict]: ...


def parse_from_token(token: str | None) -> int | None:
    if token is None or token == "":
        return None
    if not token.isascii() or not token.isdigit() or len(token) > 16:
        raise invalid_param("'from' is not a token this endpoint returned.")
    return int(token)


class EvaluationProgress(Protocol):
    async def wait_for(self, position: int, max_wait: float = 2.0) -> None: ...


class NotificationsService:
    def __init__(
        self,
        store: PushStore,
        events: EventsSource,
        serializer: EventSerializer,
        *,
        progress: EvaluationProgress | None = None,
        current_position: Callable[[], int] | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._serializer = serializer
        self._progress = progress
        self._current_position = current_position

    async def get_notifications(
        self,
        user_id: str,
        *,
        from_token: str | None,
        limit: int | None,
        only: str | None,
    ) -> JsonDict:
        before = parse_from_token(from_token)
        n = min(max(limit or DEFAULT_LIMIT, 1), MAX_LIMIT)
        if self._progress is not None and self._current_position is not None:
            # Push rules run after an event is persisted: like sync, don't answer before
            # the events already readable have been evaluated (bounded wait).
            await self._progress.wait_for(self._current_position())
        rows = await self._store.get_notifications(
            user_id, before, n, only_highlight=only == "highlight"
        )
        loaded = await self._events.get_events([r.row.event_id for r in rows])
        kept = [r for r in rows if r.row.event_id in loaded]
        events = await self._serializer.serialize(
            [loaded[r.row.event_id] for r in kept], user_id=user_id
        )
        out: JsonDict = {
            "notifications": [
                {
                    "actions": list(r.row.actions),
                    "event": event,
                    # Rules carry no profile tags any more, but Synapse sends the
                    # key (null) and clients and SyTest expect it.
                    "profile_tag": None,
                    "read": r.read,
                    "room_id": r.row.room_id,
                    "ts": r.row.received_ts,
                }
                for r, event in zip(kept, events, strict=True)
            ]
        }
        if len(rows) == n:
            out["next_token"] = str(rows[-1].row.stream_ordering)
        return out


class PushActionsRetention:
    """Deletes push actions older than `max_age_ms` (hourly): they only feed old
    unread counts and `/notifications`, and would otherwise grow without bound."""

    def __init__(
        self,
        store: PushStore,
        clock: Clock,
        *,
        max_age_ms: int = 30 * 24 * 3600 * 1000,
        interval_seconds: float = 3600.0,
        batch: int = 10_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age_ms
        self._interval = interval_seconds
        self._batch = batch

    async def delete_expired(self) -> int:
        cutoff = self._clock.time_msec() - self._max_age
        total = 0
        while True:
            n = await self._store.delete_push_actions_before(cutoff, self._batch)
            total += n
            if n < self._batch:
                return total

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.delete_expired()
            except Exception:
                logger.exception("deleting old push actions failed")
