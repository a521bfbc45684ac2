"""The deprecated (r0) sync API: the event stream and the global and room initial syncs.

* `get_events` — `GET /events`: the events since `from` as one flat list (room events,
  typing, receipts and room account data carry `room_id`; presence events carry the
  legacy `content.user_id`), long-polling up to `timeout`. It is computed by /sync from
  the same token (a sync token, so `end` works for /sync and /messages too). With
  `room_id` of a room the user is not joined to, it peeks: the room's new events,
  receipts and members' presence if the room is world-readable (403 otherwise).
* Room events everywhere here are in the r0 form: `user_id`, and `age`/`prev_content`
  repeated at the top level.
* `get_event` — `GET /events/{eventId}`: one event the user may see.
* `get_initial_sync` — `GET /initialSync`: every room (left ones with `archived`) with its
  state, latest messages and account data, plus presence, receipts and global account
  data.
* `get_room_initial_sync` — `GET /rooms/{roomId}/initialSync`: one room, the same way.

Spec: Client-Server API, old_sync.yaml, room_initial_sync.yaml and peeking_events.yaml
(deprecated since r0; the room initial sync is no longer deprecated since v1.14).
Like Synapse, both initial syncs count as a sync for presence (the user shows online).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, not_found
from ranvier.core.filters import Filter, RoomEventFilter, RoomFilter
from ranvier.core.streams import SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.notifier import Notifier, room_key
from ranvier.services.presence import PresenceService
from ranvier.services.receipts import ReceiptService
from ranvier.services.rooms.previews import RoomInitialSyncService
from ranvier.services.rooms.reading import Reader
from ranvier.services.sync.models import MAX_TIMEOUT_MS, SyncRequest
from ranvier.services.sync.service import SyncService
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.sync import MembershipRow
from ranvier.util.clock import Clock

JsonDict = dict[str, Any]

# Events per room one /events answer carries (sync's largest timeline).
EVENTS_LIMIT = 100
INITIAL_SYNC_LIMIT = 20
_EVENTS_FILTER = Filter(
    room=RoomFilter(include_leave=True, timeline=RoomEventFilter(limit=EVENTS_LIMIT))
)


class Memberships(Protocol):
    async def get_rooms_for_user(self, user_id: str) -> list[MembershipRow]: ...

    async def get_membership(
        self, room_id: str, user_id: str
    ) -> MembershipRow | None: ...

    async def get_users_sharing_rooms(
        self, user_id: str, candidates: Collection[str] | None = None
    ) -> set[str]: ...

    async def get_joined_members(self, room_ids: Collection[str]) -> set[str]: ...


class RoomReading(Protocol):
    """The rooms' read service (history visibility included)."""

    async def get_event(
        self, reader: Reader, room_id: str, event_id: str
    ) -> JsonDict: ...

    async def get_messages(
        self,
        reader: Reader,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        direction: Any,
        limit: int,
        flt: RoomEventFilter | None,
    ) -> JsonDict: ...


class EventLookup(Protocol):
    async def get_event(self, event_id: str) -> StoredEvent | None: ...


def legacy_presence_event(event: Mapping[str, Any]) -> JsonDict:
    """A presence event as the r0 API showed it: `user_id` inside the content."""
    content = dict(event.get("content") or {})
    sender = event.get("sender")
    content["user_id"] = sender
    content.setdefault("status_msg", None)
    return {"type": "m.presence", "sender": sender, "content": content}


_V1_TOP_LEVEL = ("age", "prev_content", "replaces_state", "redacted_because")


def legacy_client_event(event: Mapping[str, Any]) -> JsonDict:
    """A client event in the r0/v1 form these endpoints always had (Synapse's too):
    `user_id` (the sender) and a few `unsigned` fields repeated at the top level."""
    out = dict(event)
    sender = out.get("sender")
    if isinstance(sender, str):
        out["user_id"] = sender
    unsigned = out.get("unsigned")
    if isinstance(unsigned, Mapping):
        for key in _V1_TOP_LEVEL:
            if key in unsigned:
                out[key] = unsigned[key]
    return out


def _legacy_room(room: JsonDict) -> JsonDict:
    """A room of an initial sync with its events in the legacy form."""
    room["state"] = [legacy_client_event(e) for e in room["state"]]
    messages = room["messages"]
    messages["chunk"] = [legacy_client_event(e) for e in messages["chunk"]]
    return room


def _with_room(events: list[JsonDict], room_id: str) -> list[JsonDict]:
    return [legacy_client_event({**e, "room_id": room_id}) for e in events]


def _since_own_join(events: list[JsonDict], user_id: str) -> list[JsonDict]:
    """A newly joined room's timeline from the user's join on (sync also sends the
    history before it; the event stream only has what happened since the token)."""
    for i in range(len(events) - 1, -1, -1):
        e = events[i]
        if (
            e.get("type") == "m.room.member"
            and e.get("state_key") == user_id
            and (e.get("content") or {}).get("membership") == "join"
        ):
            return events[i:]
    return events


def _section_events(section: Mapping[str, Any], key: str) -> list[JsonDict]:
    value = section.get(key)
    events = value.get("events") if isinstance(value, Mapping) else None
    return list(events) if isinstance(events, list) else []


class LegacySyncService:
    def __init__(
        self,
        *,
        sync: SyncService,
        notifier: Notifier,
        clock: Clock,
        memberships: Memberships,
        reading: RoomReading,
        events: EventLookup,
        room_initial_sync: RoomInitialSyncService,
        presence: PresenceService,
        account_data: AccountDataService,
        receipts: ReceiptService,
    ) -> None:
        self._sync = sync
        self._notifier = notifier
        self._clock = clock
        self._memberships = memberships
        self._reading = reading
        self._events = events
        self._room_initial_sync = room_initial_sync
        self._presence = presence
        self._account_data = account_data
        self._receipts = receipts

    # -- GET /events -----------------------------------------------------------------------
    async def get_events(
        self,
        user_id: str,
        device_id: str | None,
        *,
        from_token: SyncToken | None,
        timeout_ms: int,
        room_id: str | None = None,
    ) -> JsonDict:
        since = from_token or self._notifier.current_token()
        if room_id is not None:
            row = await self._memberships.get_membership(room_id, user_id)
            if row is None or row.membership != "join":
                return await self._peek(user_id, device_id, room_id, since, timeout_ms)
        result = await self._sync.sync(
            SyncRequest(
                user_id=user_id,
                # No device: the event stream neither delivers nor acknowledges
                # to-device messages (those stay for the device's /sync).
                device_id=None,
                filter=_EVENTS_FILTER,
                since=since,
                timeout_ms=timeout_ms,
            )
        )
        chunk: list[JsonDict] = []
        rooms = result.rooms
        for rid, section in [*rooms.join.items(), *rooms.leave.items()]:
            if room_id is not None and rid != room_id:
                continue
            timeline = _section_events(section, "timeline")
            if rid in rooms.newly_joined:
                timeline = _since_own_join(timeline, user_id)
            chunk += _with_room(timeline, rid)
            chunk += _with_room(_section_events(section, "ephemeral"), rid)
            chunk += _with_room(_section_events(section, "account_data"), rid)
        if room_id is None:
            chunk += await self._invites(user_id, rooms.invite)
            chunk += result.account_data
            chunk += [legacy_presence_event(e) for e in result.presence]
        end = result.next_batch.encode()
        return {"start": since.encode(), "end": end, "chunk": chunk}

    async def _invites(
        self, user_id: str, invited: Mapping[str, Any]
    ) -> list[JsonDict]:
        out: list[JsonDict] = []
        for rid in invited:
            row = await self._memberships.get_membership(rid, user_id)
            if row is None or row.membership != "invite":
                continue
            try:
                event = await self._reading.get_event(
                    Reader(user_id, None), rid, row.event_id
                )
            except MatrixError:
                continue  # an invite the user may not read is left out
            out.append(legacy_client_event({**event, "room_id": rid}))
        return out

    async def _peek(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        since: SyncToken,
        timeout_ms: int,
    ) -> JsonDict:
        """New events of a room the user may read without being joined (world-readable
        history); the read service answers 403 for any other room."""
        reader = Reader(user_id, device_id)
        deadline = self._clock.monotonic() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        listener = self._notifier.listen()
        try:
            listener.set_keys([room_key(room_id)])
            while True:
                listener.rearm()
                now = self._notifier.current_token()
                page = await self._reading.get_messages(
                    reader,
                    room_id,
                    from_token=since.encode(),
                    to_token=now.encode(),
                    direction="f",
                    limit=EVENTS_LIMIT,
                    flt=None,
                )
                chunk = _with_room(list(page["chunk"]), room_id)
                chunk += await self._peeked_ephemeral(user_id, room_id, since, now)
                remaining = deadline - self._clock.monotonic()
                if chunk or remaining <= 0 or self._notifier.closed:
                    return {
                        "start": since.encode(),
                        "end": now.encode(),
                        "chunk": chunk,
                    }
                await listener.wait(remaining)
        finally:
            listener.close()

    async def _peeked_ephemeral(
        self, user_id: str, room_id: str, since: SyncToken, now: SyncToken
    ) -> list[JsonDict]:
        """What a peeker sees besides events, as Synapse shows it: the receipts in the
        room and the presence of its members (in the r0 form)."""
        receipts = await self._receipts.get_receipt_events(
            user_id, [room_id], since.receipts, now.receipts
        )
        out = [{**e, "room_id": rid} for rid, e in receipts.items()]
        members = await self._memberships.get_joined_members([room_id])
        changed = await self._presence.get_changed_presence_events(
            members, since.presence, now.presence
        )
        out += [legacy_presence_event(e) for e in changed]
        return out

    # -- GET /events/{eventId} --------------------------------------------------------------
    async def get_event(
        self, user_id: str, device_id: str | None, event_id: str
    ) -> JsonDict:
        stored = await self._events.get_event(event_id)
        if stored is None or not stored.is_servable:
            raise not_found("Event not found.")
        room_id = stored.event.room_id
        event = await self._reading.get_event(
            Reader(user_id, device_id), room_id, event_id
        )
        return legacy_client_event({**event, "room_id": room_id})

    # -- GET /initialSync ----------------------------------------------------------------------
    async def get_initial_sync(
        self, user_id: str, device_id: str | None, *, limit: int, archived: bool
    ) -> JsonDict:
        await self._presence.sync_started(user_id, None)
        try:
            return await self._initial_sync(user_id, device_id, limit, archived)
        finally:
            self._presence.sync_finished(user_id)

    async def _initial_sync(
        self, user_id: str, device_id: str | None, limit: int, archived: bool
    ) -> JsonDict:
        now = self._notifier.current_token()
        wanted = ("join", "invite", "leave", "ban") if archived else ("join", "invite")
        memberships = [
            m
            for m in await self._memberships.get_rooms_for_user(user_id)
            if m.membership in wanted
        ]
        snapshot = await self._account_data.get_account_data_since(
            user_id, 0, now.account_data, initial=True
        )
        rooms: list[JsonDict] = []
        for m in memberships:
            if m.membership == "invite":
                rooms.append(await self._invited_room(user_id, m))
                continue
            room = _legacy_room(
                await self._room_initial_sync.get_room_initial_sync(
                    user_id, device_id, m.room_id, limit=limit
                )
            )
            room["membership"] = m.membership
            room["messages"]["end"] = now.encode()
            room["account_data"] = _room_account_data(snapshot, m.room_id)
            rooms.append(room)
        joined = [m.room_id for m in memberships if m.membership == "join"]
        receipts = await self._receipts.get_receipt_events(
            user_id, joined, 0, now.receipts
        )
        return {
            "end": now.encode(),
            "rooms": rooms,
            "presence": await self._presence_of(user_id, None),
            "account_data": [
                {"type": t, "content": c}
                for t, c in sorted(snapshot.global_data.items())
            ],
            "receipts": [{**e, "room_id": rid} for rid, e in receipts.items()],
        }

    async def _invited_room(self, user_id: str, m: MembershipRow) -> JsonDict:
        room: JsonDict = {"room_id": m.room_id, "membership": "invite"}
        invites = await self._invites(user_id, {m.room_id: {}})
        if invites:
            room["invite"] = invites[0]
        return room

    async def _presence_of(
        self, user_id: str, members: Collection[str] | None
    ) -> list[JsonDict]:
        """Presence of the user and of those sharing a room with them (or of `members`)."""
        users = set(members) if members is not None else set()
        if members is None:
            users = await self._memberships.get_users_sharing_rooms(user_id)
        users.add(user_id)
        out = []
        for uid in sorted(users):
            content = await self._presence.get_presence(user_id, uid, check=False)
            out.append(
                legacy_presence_event(
                    {"type": "m.presence", "sender": uid, "content": content}
                )
            )
        return out

    # -- GET /rooms/{roomId}/initialSync ---------------------------------------------------------
    async def get_room_initial_sync(
        self, user_id: str, device_id: str | None, room_id: str, *, limit: int
    ) -> JsonDict:
        await self._presence.sync_started(user_id, None)
        try:
            now = self._notifier.current_token()
            room = _legacy_room(
                await self._room_initial_sync.get_room_initial_sync(
                    user_id, device_id, room_id, limit=limit
                )
            )
            room["messages"]["end"] = now.encode()
            snapshot = await self._account_data.get_account_data_since(
                user_id, 0, now.account_data
            )
            room["account_data"] = _room_account_data(snapshot, room_id)
            if room.get("membership") != "join":
                # Former members and peekers get no ephemeral data (as Synapse).
                room["presence"] = []
                room["receipts"] = []
                return room
            members = {
                e["state_key"]
                for e in room["state"]
                if e.get("type") == "m.room.member"
                and (e.get("content") or {}).get("membership") == "join"
            }
            room["presence"] = await self._presence_of(user_id, members)
            receipts = await self._receipts.get_receipt_events(
                user_id, [room_id], 0, now.receipts
            )
            room["receipts"] = [{**e, "room_id": rid} for rid, e in receipts.items()]
            return room
        finally:
            self._presence.sync_finished(user_id)


def _room_account_data(snapshot: AccountDataSnapshot, room_id: str) -> list[JsonDict]:
    data: Mapping[str, JsonDict] = snapshot.room_data.get(room_id, {})
    return [{"type": t, "content": c} for t, c in sorted(data.items())]
