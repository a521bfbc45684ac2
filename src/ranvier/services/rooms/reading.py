"""Reading rooms: timeline pagination, context, single events, state and members.

Spec: C-S API > Events > Getting events for a room; Event context; Room membership.
Every method first asks `EventVisibility.check_can_read` (members, former members up to
their leave, peekers of world-readable rooms) and filters events per history visibility;
users who left see the room as it was when they left.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from ranvier.core.errors import MatrixError, invalid_param, not_found
from ranvier.core.events.event import StateKey
from ranvier.core.filters import RoomEventFilter
from ranvier.core.room_tokens import InvalidRoomTokenError, RoomToken, parse_room_token
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.remote import RoomBackfill
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.services.rooms.visibility import EventVisibility, ReadAccess
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.rooms import RoomStore

__all__ = ["Reader", "RoomReadService"]

JsonDict = dict[str, Any]
Direction = Literal["b", "f"]

MAX_LIMIT = 1000


class Reader:
    """Who is reading: for history visibility and `transaction_id`."""

    __slots__ = ("device_id", "user_id")

    def __init__(self, user_id: str, device_id: str | None) -> None:
        self.user_id = user_id
        self.device_id = device_id


def _token(text: str | None) -> RoomToken | None:
    if text is None or text == "":
        return None
    try:
        return parse_room_token(text)
    except InvalidRoomTokenError as e:
        raise invalid_param(f"Invalid pagination token: {e}") from None


class RoomReadService:
    def __init__(
        self,
        *,
        events: EventStore,
        rooms: RoomStore,
        state: RoomStateReader,
        visibility: EventVisibility,
        serializer: ClientEventSerializer,
        backfill: RoomBackfill | None = None,
    ) -> None:
        self._events = events
        self._backfill = backfill
        self._rooms = rooms
        self._state = state
        self._visibility = visibility
        self._serializer = serializer

    # -- helpers -------------------------------------------------------------------------
    async def _serialize(
        self, reader: Reader, events: Sequence[StoredEvent]
    ) -> list[JsonDict]:
        return await self._serializer.serialize(
            events, user_id=reader.user_id, device_id=reader.device_id
        )

    async def _topological(self, room_id: str, token: RoomToken) -> RoomToken:
        if token.depth is not None:
            return token
        return await self._events.get_topological_token(room_id, token.stream)

    async def _visible(
        self, reader: Reader, access: ReadAccess, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        return await self._visibility.filter_events_for_user(
            reader.user_id, events, is_peeking=access.is_peeking
        )

    async def _state_ids_for(
        self, room_id: str, access: ReadAccess
    ) -> Mapping[StateKey, str]:
        """Current state, or the state when a former member left."""
        if access.max_stream is None:
            return await self._state.get_current_state_ids(room_id)
        last = await self._events.get_last_event_at(room_id, access.max_stream)
        if last is None:
            return {}
        return await self._state.get_state_ids_at(last.event_id) or {}

    async def _member_state(
        self, at_event_id: str | None, senders: Collection[str]
    ) -> list[StoredEvent]:
        """Member events of `senders` in the state after `at_event_id` (lazy loading)."""
        if at_event_id is None or not senders:
            return []
        state = await self._state.get_state_at(
            at_event_id, [("m.room.member", s) for s in sorted(senders)]
        )
        return list(state.values())

    # -- /messages -----------------------------------------------------------------------
    async def get_messages(
        self,
        reader: Reader,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        direction: Direction,
        limit: int,
        flt: RoomEventFilter | None,
    ) -> JsonDict:
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        limit = max(0, min(limit, MAX_LIMIT))
        current = self._events.get_current_position()
        max_stream = (
            current if access.max_stream is None else min(current, access.max_stream)
        )
        start = _token(from_token)
        if start is None:
            start = (
                RoomToken(stream=max_stream) if direction == "b" else RoomToken(0, 0)
            )
        start = await self._topological(room_id, start)
        end_bound = _token(to_token)
        if end_bound is not None:
            end_bound = await self._topological(room_id, end_bound)
        page = await self._events.paginate_room(
            room_id, start, end_bound, direction, limit, flt, max_stream=max_stream
        )
        if (
            direction == "b"
            and page.next_token is None
            and self._backfill is not None
            and access.max_stream is None
            and await self._backfill.backfill(room_id, limit - len(page.events))
        ):
            # We ran out of history: other servers in the room filled it in.
            page = await self._events.paginate_room(
                room_id, start, end_bound, direction, limit, flt, max_stream=max_stream
            )
        matching = [e for e in page.events if flt is None or _matches(flt, e)]
        visible = await self._visible(reader, access, matching)
        out: JsonDict = {
            "start": start.encode(),
            "chunk": await self._serialize(reader, visible),
        }
        if page.next_token is not None:
            out["end"] = page.next_token.encode()
        if flt is not None and flt.lazy_load_members and visible:
            members = await self._member_state(
                visible[-1].event_id, {e.event.sender for e in visible}
            )
            out["state"] = await self._serialize(reader, members)
        return out

    # -- /context ----------------------------------------------------------------------------
    async def get_context(
        self,
        reader: Reader,
        room_id: str,
        event_id: str,
        *,
        limit: int,
        flt: RoomEventFilter | None,
    ) -> JsonDict:
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        target = await self._get_visible_event(reader, access, room_id, event_id)
        limit = max(0, min(limit, MAX_LIMIT))
        before_n = limit // 2
        after_n = limit - before_n
        current = self._events.get_current_position()
        max_stream = (
            current if access.max_stream is None else min(current, access.max_stream)
        )
        here = RoomToken(stream=target.stream_ordering, depth=target.depth)
        before_tok = RoomToken(stream=target.stream_ordering - 1, depth=target.depth)
        before = await self._events.paginate_room(
            room_id, before_tok, None, "b", before_n, flt, max_stream=max_stream
        )
        after = await self._events.paginate_room(
            room_id, here, None, "f", after_n, flt, max_stream=max_stream
        )
        ev_before = await self._visible(
            reader,
            access,
            [e for e in before.events if flt is None or _matches(flt, e)],
        )
        ev_after = await self._visible(
            reader, access, [e for e in after.events if flt is None or _matches(flt, e)]
        )
        oldest = before.events[-1] if before.events else target
        newest = after.events[-1] if after.events else target
        state_ids = await self._state.get_state_ids_at(newest.event_id) or {}
        if flt is not None and flt.lazy_load_members:
            senders = {e.event.sender for e in [*ev_before, target, *ev_after]}
            state_ids = {k: v for k, v in state_ids.items() if k[0] != "m.room.member"
                         or k[1] in senders}  # fmt: skip
        state = await self._state.resolve_ids(state_ids)
        return {
            "event": (await self._serialize(reader, [target]))[0],
            "events_before": await self._serialize(reader, ev_before),
            "events_after": await self._serialize(reader, ev_after),
            "start": RoomToken(
                stream=oldest.stream_ordering - 1, depth=oldest.depth
            ).encode(),
            "end": RoomToken(
                stream=newest.stream_ordering, depth=newest.depth
            ).encode(),
            "state": await self._serialize(reader, list(state.values())),
        }

    async def _get_visible_event(
        self, reader: Reader, access: ReadAccess, room_id: str, event_id: str
    ) -> StoredEvent:
        stored = await self._events.get_event(event_id)
        if (
            stored is None
            or stored.event.room_id != room_id
            or (
                access.max_stream is not None
                and stored.stream_ordering > access.max_stream
            )
        ):
            raise not_found("Event not found.")
        visible = await self._visible(reader, access, [stored])
        if not visible:
            raise not_found("Event not found.")
        return visible[0]

    # -- single events and state ---------------------------------------------------------
    async def get_event(self, reader: Reader, room_id: str, event_id: str) -> JsonDict:
        try:
            access = await self._visibility.check_can_read(room_id, reader.user_id)
        except MatrixError as e:
            if e.status != 403:
                raise
            # Spec (GET /rooms/{roomId}/event/{eventId}): 404 "not found or you do not
            # have permission", so the answer does not tell whether the event exists.
            raise not_found("Event not found.") from None
        stored = await self._get_visible_event(reader, access, room_id, event_id)
        return (await self._serialize(reader, [stored]))[0]

    async def get_state(self, reader: Reader, room_id: str) -> list[JsonDict]:
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        ids = await self._state_ids_for(room_id, access)
        state = await self._state.resolve_ids(ids)
        return await self._serialize(reader, list(state.values()))

    async def get_state_event(
        self, reader: Reader, room_id: str, etype: str, state_key: str
    ) -> JsonDict:
        """The client event for one state key (callers pick `content` or all of it)."""
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        ids = await self._state_ids_for(room_id, access)
        event_id = ids.get((etype, state_key))
        stored = (
            await self._events.get_event(event_id) if event_id is not None else None
        )
        if stored is None:
            raise not_found("Event not found.")
        return (await self._serialize(reader, [stored]))[0]

    async def get_members(
        self,
        reader: Reader,
        room_id: str,
        *,
        at: str | None,
        membership: str | None,
        not_membership: str | None,
    ) -> list[JsonDict]:
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        token = _token(at)
        if token is not None:
            bound = token.stream
            if access.max_stream is not None:
                bound = min(bound, access.max_stream)
            last = await self._events.get_last_event_at(room_id, bound)
            ids: Mapping[StateKey, str] = (
                (await self._state.get_state_ids_at(last.event_id) or {})
                if last
                else {}
            )
        else:
            ids = await self._state_ids_for(room_id, access)
        member_ids = {k: v for k, v in ids.items() if k[0] == "m.room.member"}
        state = await self._state.resolve_ids(member_ids)
        chosen = [
            s
            for s in state.values()
            if (membership is None or s.event.membership == membership)
            and (not_membership is None or s.event.membership != not_membership)
        ]
        return await self._serialize(reader, chosen)

    async def get_joined_members(self, reader: Reader, room_id: str) -> JsonDict:
        access = await self._visibility.check_can_read(room_id, reader.user_id)
        ids = await self._state_ids_for(room_id, access)
        member_ids = {k: v for k, v in ids.items() if k[0] == "m.room.member"}
        state = await self._state.resolve_ids(member_ids)
        joined: JsonDict = {}
        for (_, user_id), stored in sorted(state.items()):
            if stored.event.membership != "join":
                continue
            entry: JsonDict = {}
            for src, dst in (
                ("displayname", "display_name"),
                ("avatar_url", "avatar_url"),
            ):
                value = stored.event.content.get(src)
                if isinstance(value, str):
                    entry[dst] = value
            joined[user_id] = entry
        return {"joined": joined}

    async def timestamp_to_event(
        self, reader: Reader, room_id: str, ts: int, direction: Direction
    ) -> JsonDict:
        await self._visibility.check_can_read(room_id, reader.user_id)
        event_id = await self._events.get_event_id_for_timestamp(room_id, ts, direction)
        stored = (
            await self._events.get_event(event_id) if event_id is not None else None
        )
        if stored is None:
            raise not_found("No event found at or near that timestamp.")
        return {
            "event_id": stored.event_id,
            "origin_server_ts": stored.event.origin_server_ts,
        }


def _matches(flt: RoomEventFilter, stored: StoredEvent) -> bool:
    return flt.matches(stored.event)
