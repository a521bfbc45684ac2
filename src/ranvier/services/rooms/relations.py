"""Relations and threads of a room.

Spec: C-S API > Forming relationships between events (`GET /relations`), Threading
(`GET /threads`). Access is room-level first (`EventVisibility.check_can_read`: members,
former members up to their leave, peekers of world-readable rooms), then per event
(history visibility at each event). Served events carry their bundled aggregations
through the shared serializer. Pagination tokens are room stream tokens (`s<N>`), the
same kind `/messages` hands out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ranvier.core.errors import invalid_param, not_found
from ranvier.core.room_tokens import InvalidRoomTokenError, RoomToken, parse_room_token
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.visibility import EventVisibility, ReadAccess
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.relations import MAX_RECURSION_DEPTH, RelationStore

__all__ = ["RelationQuery", "RelationService", "ThreadQuery"]

JsonDict = dict[str, Any]
Direction = Literal["b", "f"]

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class RelationQuery:
    rel_type: str | None = None
    event_type: str | None = None
    from_token: str | None = None
    to_token: str | None = None
    direction: Direction = "b"
    limit: int = 50
    recurse: bool = False


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    participated_only: bool = False
    from_token: str | None = None
    limit: int = 50


def _stream(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return parse_room_token(text).stream
    except InvalidRoomTokenError as e:
        raise invalid_param(f"Invalid pagination token: {e}") from None


class RelationService:
    def __init__(
        self,
        *,
        events: EventStore,
        relations: RelationStore,
        visibility: EventVisibility,
        serializer: ClientEventSerializer,
    ) -> None:
        self._events = events
        self._relations = relations
        self._visibility = visibility
        self._serializer = serializer

    async def _visible(
        self, user_id: str, access: ReadAccess, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        if access.max_stream is not None:
            events = [e for e in events if e.stream_ordering <= access.max_stream]
        return await self._visibility.filter_events_for_user(
            user_id, events, is_peeking=access.is_peeking
        )

    async def _load_in_order(self, event_ids: Sequence[str]) -> list[StoredEvent]:
        loaded = await self._events.get_events(event_ids)
        return [loaded[eid] for eid in event_ids if eid in loaded]

    async def get_relations(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_id: str,
        query: RelationQuery,
    ) -> JsonDict:
        access = await self._visibility.check_can_read(room_id, user_id)
        parent = await self._events.get_event(event_id)
        if (
            parent is None
            or parent.event.room_id != room_id
            or not await self._visible(user_id, access, [parent])
        ):
            raise not_found("Unknown parent event")
        page = await self._relations.get_relations(
            room_id,
            event_id,
            rel_type=query.rel_type,
            event_type=query.event_type,
            from_stream=_stream(query.from_token),
            to_stream=_stream(query.to_token),
            direction=query.direction,
            limit=max(1, min(query.limit, MAX_LIMIT)),
            recurse=query.recurse,
        )
        related = await self._visible(
            user_id, access, await self._load_in_order(page.event_ids)
        )
        out: JsonDict = {
            "chunk": await self._serializer.serialize(
                related, user_id=user_id, device_id=device_id
            )
        }
        if page.next_stream is not None:
            out["next_batch"] = RoomToken(page.next_stream).encode()
        if query.from_token:
            out["prev_batch"] = query.from_token
        if query.recurse:
            out["recursion_depth"] = MAX_RECURSION_DEPTH
        return out

    async def get_threads(
        self, user_id: str, device_id: str | None, room_id: str, query: ThreadQuery
    ) -> JsonDict:
        access = await self._visibility.check_can_read(room_id, user_id)
        page = await self._relations.get_threads(
            room_id,
            participant=user_id if query.participated_only else None,
            before_stream=_stream(query.from_token),
            limit=max(1, min(query.limit, MAX_LIMIT)),
        )
        roots = [
            r
            for r in await self._load_in_order(page.thread_ids)
            if r.event.room_id == room_id
        ]
        visible = await self._visible(user_id, access, roots)
        out: JsonDict = {
            "chunk": await self._serializer.serialize(
                visible, user_id=user_id, device_id=device_id
            )
        }
        if page.next_stream is not None:
            out["next_batch"] = RoomToken(page.next_stream).encode()
        return out
