"""Local event creation: build, sign and feed events to the ingest pipeline.

prev_events are the room's forward extremities (deepest first, at most
`MAX_LOCAL_PREV_EVENTS`); auth_events are the auth events selection over the current
state; depth is one more than the deepest prev event. Since room v12 the create event is
not cited and the room ID is derived from the create event.

`LocalEventSender.send` is the one entry point services use to write into an existing
room: it resolves the room version, holds the room's lock, makes `PUT /send` idempotent
per (room, user, device, txn ID), and maps auth failures to 403 M_FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.auth import AuthError, auth_events_selection
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.errors import bad_json, forbidden, not_found, too_large
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.errors import EventFormatError, EventSizeError
from ranvier.core.events.event import Event
from ranvier.core.events.local_builder import MAX_LOCAL_PREV_EVENTS, build_unsigned_pdu
from ranvier.core.room_versions import RoomVersion
from ranvier.services.events.pipeline import EventPipeline, RoomSession

__all__ = ["EventBuilder", "LocalEventSender", "RoomVersionLookup", "SentEvent"]

JsonDict = dict[str, Any]


class RoomVersionLookup(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...


class EventIdGenerator(Protocol):
    def __call__(self) -> str:
        """A fresh random opaque string (room v1/v2 event IDs, pre-v12 room IDs)."""
        ...


@dataclass(frozen=True, slots=True)
class SentEvent:
    event_id: str
    # None when an earlier request with the same transaction ID already sent it.
    stream_ordering: int | None
    event: Event | None = None


class EventBuilder:
    def __init__(
        self, server_name: str, signing_key: SigningKey, random_id: EventIdGenerator
    ) -> None:
        self.server_name = server_name
        self._key = signing_key
        self._random_id = random_id

    def new_room_id(self) -> str:
        """A room ID for rooms before v12 (since v12 the create event names the room)."""
        return f"!{self._random_id()}:{self.server_name}"

    def finalize(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> Event:
        try:
            return finalize_local_event(pdu, room_version, self.server_name, self._key)
        except EventSizeError as e:
            raise too_large(f"Event too large: {e}") from None
        except EventFormatError as e:
            raise bad_json(f"Invalid event: {e}") from None

    def build_create_event(
        self,
        room_version: RoomVersion,
        creator: str,
        content: JsonDict,
        now_ms: int,
        room_id: str | None = None,
    ) -> Event:
        """`room_id`: one chosen beforehand (before v12 only; since v12 the create
        event's hash names the room)."""
        if room_version.room_id_from_create_event:
            room_id = None
        elif room_id is None:
            room_id = self.new_room_id()
        pdu = build_unsigned_pdu(
            room_version,
            event_type="m.room.create",
            sender=creator,
            content=content,
            room_id=room_id,
            origin_server_ts=now_ms,
            prev_events=[],
            auth_events=[],
            state_key="",
            v1_event_id=self._v1_id(room_version),
        )
        return self.finalize(pdu, room_version)

    def _v1_id(self, room_version: RoomVersion) -> str | None:
        if room_version.is_v1_event_format:
            return f"${self._random_id()}:{self.server_name}"
        return None

    async def build(
        self,
        session: RoomSession,
        *,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        now_ms: int,
    ) -> Event:
        """A signed event on top of the session's tip."""
        rv = session.room_version
        prev_ids = [e for e, _ in session.tip.extremities[:MAX_LOCAL_PREV_EVENTS]]
        prev_events = await session.get_events(prev_ids)
        fields: dict[str, Any] = {
            "event_type": event_type,
            "sender": sender,
            "content": content,
            "room_id": session.room_id,
            "origin_server_ts": now_ms,
            "state_key": state_key,
            "redacts": redacts,
            "v1_event_id": self._v1_id(rv),
        }
        # The auth events selection needs the event's shape, not its references.
        draft = build_unsigned_pdu(rv, prev_events=[], auth_events=[], **fields)
        keys = auth_events_selection(Event(draft, "$draft", rv))
        auth = await session.get_current_state(sorted(keys))
        pdu = build_unsigned_pdu(
            rv,
            prev_events=[prev_events[e] for e in prev_ids if e in prev_events],
            auth_events=[auth[k] for k in sorted(auth)],
            **fields,
        )
        return self.finalize(pdu, rv)


class LocalEventSender:
    def __init__(
        self,
        *,
        pipeline: EventPipeline,
        builder: EventBuilder,
        versions: RoomVersionLookup,
        txn_lookup: TxnLookup,
        now: Callable[[], int],
    ) -> None:
        self._pipeline = pipeline
        self._builder = builder
        self._versions = versions
        self._txns = txn_lookup
        self._now = now

    @property
    def builder(self) -> EventBuilder:
        return self._builder

    async def room_version(self, room_id: str) -> RoomVersion:
        rv = await self._versions.get_room_version(room_id)
        if rv is None:
            raise not_found("Unknown room.")
        return rv

    async def send(
        self,
        room_id: str,
        *,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        txn: tuple[str, str] | None = None,
        precheck: Callable[[RoomSession], Awaitable[bool]] | None = None,
        redaction_allowed: bool = False,
        origin_server_ts: int | None = None,
    ) -> SentEvent:
        """Create and persist one event in `room_id`.

        `txn` is (device_id, txn_id) for idempotent sends. `precheck` runs under the
        room's lock before building (it may raise, or return False to skip the send and
        return the current event for the state key, e.g. a no-op re-join).
        `origin_server_ts` replaces the clock for bridged history (an application
        service's `ts=`).
        """
        rv = await self.room_version(room_id)
        async with self._pipeline.room_session(room_id, rv) as session:
            if txn is not None:
                existing = await self._txns.get_event_id_for_txn(
                    room_id, sender, txn[0], txn[1]
                )
                if existing is not None:
                    return SentEvent(existing, None)
            if precheck is not None and not await precheck(session):
                key = (event_type, state_key or "")
                return SentEvent(session.current_state_ids.get(key, ""), None)
            event = await self._builder.build(
                session,
                event_type=event_type,
                sender=sender,
                content=content,
                state_key=state_key,
                redacts=redacts,
                now_ms=self._now() if origin_server_ts is None else origin_server_ts,
            )
            try:
                await session.add_event(
                    event,
                    local=True,
                    txn_id=txn[1] if txn else None,
                    device_id=txn[0] if txn else None,
                    redaction_allowed=redaction_allowed,
                )
            except AuthError as e:
                raise forbidden(e.reason) from None
            persisted = await session.commit()
        return SentEvent(event.event_id, persisted[0].stream_ordering, event)


class TxnLookup(Protocol):
    async def get_event_id_for_txn(
        self, room_id: str, user_id: str, device_id: str, txn_id: str
    ) -> str | None: ...
