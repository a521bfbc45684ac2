"""Server-side search (spec: C-S API > Server Side Search), category `room_events`.

The reader searches the rooms they are joined to, and the rooms they left up to their
leave (as `EventVisibility.check_can_read` lets them read); results then pass the same
per-event history-visibility check as every read path and the request's filter. Ranking
and tokenising are the database's (`storage/stores/search.py`): every word of the search
term must match, as a prefix.

`next_batch` is opaque to clients: `recent:<stream>` continues below a stream position,
`rank:<offset>` skips that many ranked rows. Results filtered out after the query (by
visibility, or filter fields SQL cannot check) make a page shorter, never wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ranvier.core.errors import invalid_param
from ranvier.core.filters import RoomEventFilter
from ranvier.core.room_tokens import RoomToken
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.reading import Reader, RoomReadService
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.services.rooms.visibility import EventVisibility
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.rooms import RoomStore
from ranvier.storage.stores.search import (
    SEARCH_KEYS,
    SearchHit,
    SearchQuery,
    SearchScope,
    SearchStore,
)

__all__ = ["RoomEventsCriteria", "SearchService"]

JsonDict = dict[str, Any]
Order = Literal["rank", "recent"]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_TERMS = 16
MAX_CONTEXT = 100
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class EventContextSpec:
    before_limit: int = 5
    after_limit: int = 5
    include_profile: bool = False


@dataclass(frozen=True, slots=True)
class RoomEventsCriteria:
    search_term: str
    keys: tuple[str, ...] = SEARCH_KEYS
    filter: RoomEventFilter | None = None
    order_by: Order = "rank"
    event_context: EventContextSpec | None = None
    include_state: bool = False
    group_by: tuple[str, ...] = ()


def search_terms(text: str) -> list[str]:
    """The words of a search term, lower-cased (punctuation is never query syntax)."""
    return _WORD.findall(text.lower())[:MAX_TERMS]


def _parse_batch(token: str | None, order: Order) -> tuple[int | None, int]:
    """(before_stream, offset) from a `next_batch` token."""
    if token is None or token == "":
        return None, 0
    kind, _, number = token.partition(":")
    # Backfilled events have negative stream positions; offsets never are negative.
    digits = number[1:] if order == "recent" and number.startswith("-") else number
    if kind != order or not digits.isascii() or not digits.isdigit():
        raise invalid_param("Invalid 'next_batch' token")
    value = int(number)
    if abs(value) > 2**53:
        raise invalid_param("Invalid 'next_batch' token")
    return (value, 0) if order == "recent" else (None, value)


class SearchService:
    def __init__(
        self,
        *,
        search: SearchStore,
        rooms: RoomStore,
        events: EventStore,
        visibility: EventVisibility,
        reading: RoomReadService,
        state: RoomStateReader,
        serializer: ClientEventSerializer,
    ) -> None:
        self._state = state
        self._search = search
        self._rooms = rooms
        self._events = events
        self._visibility = visibility
        self._reading = reading
        self._serializer = serializer

    async def _scope(self, user_id: str, flt: RoomEventFilter | None) -> SearchScope:
        rows = await self._rooms.get_rooms_for_user(user_id, ("join", "leave", "ban"))
        joined: list[str] = []
        left: dict[str, int] = {}
        for row in rows:
            if flt is not None and not flt.includes_room(row.room_id):
                continue
            if row.membership == "join":
                joined.append(row.room_id)
            elif await self._rooms.has_ever_joined(row.room_id, user_id):
                left[row.room_id] = row.stream_ordering
        return SearchScope(joined, left)

    async def search_room_events(
        self,
        user_id: str,
        device_id: str | None,
        criteria: RoomEventsCriteria,
        next_batch: str | None,
    ) -> JsonDict:
        before_stream, offset = _parse_batch(next_batch, criteria.order_by)
        flt = criteria.filter
        limit = DEFAULT_LIMIT if flt is None or flt.limit is None else flt.limit
        terms = search_terms(criteria.search_term)
        query = SearchQuery(
            terms=terms,
            scope=await self._scope(user_id, flt),
            keys=criteria.keys,
            senders=flt.senders if flt is not None else None,
            not_senders=flt.not_senders if flt is not None else (),
            order=criteria.order_by,
            before_stream=before_stream,
            offset=offset,
            limit=max(1, min(limit, MAX_LIMIT)),
        )
        page = await self._search.search_events(query)
        hits, events = await self._visible_hits(user_id, page.hits, flt)
        reader = Reader(user_id, device_id)
        serialized = await self._serializer.serialize(
            events, user_id=user_id, device_id=device_id
        )
        results: list[JsonDict] = []
        for hit, stored, client in zip(hits, events, serialized, strict=True):
            result: JsonDict = {"rank": hit.rank, "result": client}
            if criteria.event_context is not None:
                result["context"] = await self._context(
                    reader, stored, criteria.event_context
                )
            results.append(result)
        out: JsonDict = {
            "count": page.count,
            "highlights": terms,
            "results": results,
        }
        if page.more and page.hits:
            out["next_batch"] = (
                f"recent:{page.hits[-1].stream_ordering}"
                if criteria.order_by == "recent"
                else f"rank:{offset + len(page.hits)}"
            )
        if criteria.include_state:
            out["state"] = {
                room_id: await self._reading.get_state(reader, room_id)
                for room_id in dict.fromkeys(h.room_id for h in hits)
            }
        if criteria.group_by:
            out["groups"] = _groups(criteria.group_by, events, out.get("next_batch"))
        return {"search_categories": {"room_events": out}}

    async def _visible_hits(
        self,
        user_id: str,
        hits: Sequence[SearchHit],
        flt: RoomEventFilter | None,
    ) -> tuple[list[SearchHit], list[StoredEvent]]:
        unique = list({h.event_id: h for h in reversed(hits)}.values())[::-1]
        loaded = await self._events.get_events([h.event_id for h in unique])
        candidates = [
            loaded[h.event_id]
            for h in unique
            if h.event_id in loaded
            and (flt is None or flt.matches(loaded[h.event_id].event))
        ]
        visible = await self._visibility.filter_events_for_user(
            user_id, candidates, is_peeking=False
        )
        by_id = {h.event_id: h for h in unique}
        return [by_id[e.event_id] for e in visible], visible

    async def _context(
        self, reader: Reader, target: StoredEvent, spec: EventContextSpec
    ) -> JsonDict:
        room_id = target.event.room_id
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        current = self._events.get_current_position()
        max_stream = (
            current if access.max_stream is None else min(current, access.max_stream)
        )
        here = RoomToken(stream=target.stream_ordering, depth=target.depth)
        before_tok = RoomToken(stream=target.stream_ordering - 1, depth=target.depth)
        before = await self._events.paginate_room(
            room_id, before_tok, None, "b", spec.before_limit, max_stream=max_stream
        )
        after = await self._events.paginate_room(
            room_id, here, None, "f", spec.after_limit, max_stream=max_stream
        )
        ev_before = await self._visibility.filter_events_for_user(
            reader.user_id, before.events, is_peeking=access.is_peeking
        )
        ev_after = await self._visibility.filter_events_for_user(
            reader.user_id, after.events, is_peeking=access.is_peeking
        )
        oldest = before.events[-1] if before.events else target
        newest = after.events[-1] if after.events else target
        context: JsonDict = {
            "events_before": await self._serializer.serialize(
                ev_before, user_id=reader.user_id, device_id=reader.device_id
            ),
            "events_after": await self._serializer.serialize(
                ev_after, user_id=reader.user_id, device_id=reader.device_id
            ),
            "start": RoomToken(oldest.stream_ordering - 1, oldest.depth).encode(),
            "end": RoomToken(newest.stream_ordering, newest.depth).encode(),
        }
        if spec.include_profile:
            context["profile_info"] = await self._profiles(
                target, [*ev_before, target, *ev_after]
            )
        return context

    async def _profiles(
        self, target: StoredEvent, events: Sequence[StoredEvent]
    ) -> JsonDict:
        """Sender profiles as of the matched event (its room's member state there)."""
        senders = sorted({e.event.sender for e in events})
        members = await self._state.get_state_at(
            target.event_id, [("m.room.member", s) for s in senders]
        )
        out: JsonDict = {}
        for member in members.values():
            content = member.event.content
            profile: JsonDict = {}
            for key in ("displayname", "avatar_url"):
                value = content.get(key)
                if isinstance(value, str):
                    profile[key] = value
            if member.event.state_key is not None:
                out[member.event.state_key] = profile
        return out


def _groups(
    group_by: Sequence[str], events: Sequence[StoredEvent], next_batch: str | None
) -> JsonDict:
    groups: JsonDict = {}
    for key in group_by:
        buckets: dict[str, list[str]] = {}
        for stored in events:
            value = stored.event.room_id if key == "room_id" else stored.event.sender
            buckets.setdefault(value, []).append(stored.event_id)
        group: JsonDict = {}
        for order, (value, ids) in enumerate(buckets.items()):
            entry: JsonDict = {"results": ids, "order": order}
            if next_batch is not None:
                entry["next_batch"] = next_batch
            group[value] = entry
        groups[key] = group
    return groups
