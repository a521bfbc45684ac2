"""Looking at one room without /sync.

* `RoomSummaryService` — `GET /room_summary/{roomIdOrAlias}` (v1.15, MSC3266): the
  public-rooms description of a local room plus its version, encryption, the
  requester's membership and a restricted room's allowed rooms. Shown to members
  (joined, invited, knocking) and, for everyone else, only if the room is
  world-readable or joinable/knockable by anyone (public, knock, knock_restricted);
  otherwise 404, so private rooms cannot be probed.
* `RoomInitialSyncService` — `GET /rooms/{roomId}/initialSync` (legacy, not deprecated
  again since v1.14): the room's state and latest messages, for members, former
  members (as of when they left) and peekers of world-readable rooms.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from ranvier.core.errors import invalid_param, not_found
from ranvier.core.events.event import Event, StateKey
from ranvier.core.ids import InvalidIdentifierError, parse_room_id
from ranvier.core.room_tokens import RoomToken
from ranvier.services.rooms.reading import Reader, RoomReadService
from ranvier.storage.stores.rooms import MembershipRow, RoomRow

JsonDict = dict[str, Any]

INITIAL_SYNC_MESSAGES = 20
# Join rules under which anyone may see a summary (MSC3266).
_OPEN_JOIN_RULES = frozenset({"public", "knock", "knock_restricted"})
_MEMBER_STATES = frozenset({"join", "invite", "knock"})


class RoomDescriptions(Protocol):
    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]: ...

    async def get_room_summary(self, room_id: str) -> JsonDict: ...

    async def get_visibility(self, room_id: str) -> str: ...


class RoomRecords(Protocol):
    async def get_room(self, room_id: str) -> RoomRow | None: ...

    async def get_membership(
        self, room_id: str, user_id: str
    ) -> MembershipRow | None: ...


class CurrentState(Protocol):
    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]: ...


def _allowed_room_ids(join_rules: Mapping[str, Any]) -> list[str]:
    allow = join_rules.get("allow")
    if not isinstance(allow, list):
        return []
    return [
        a["room_id"]
        for a in allow
        if isinstance(a, Mapping)
        and a.get("type") == "m.room_membership"
        and isinstance(a.get("room_id"), str)
    ]


class RoomSummaryService:
    def __init__(
        self,
        *,
        directory: RoomDescriptions,
        rooms: RoomRecords,
        state: CurrentState,
    ) -> None:
        self._directory = directory
        self._rooms = rooms
        self._state = state

    async def _room_id(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id, _servers = await self._directory.resolve_alias(room_id_or_alias)
            return room_id
        try:
            parse_room_id(room_id_or_alias)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None
        return room_id_or_alias

    async def get_room_summary(
        self, user_id: str | None, room_id_or_alias: str
    ) -> JsonDict:
        room_id = await self._room_id(room_id_or_alias)
        room = await self._rooms.get_room(room_id)
        hidden = not_found("Room not found or not visible to you.")
        if room is None:
            raise hidden
        membership = None
        if user_id is not None:
            row = await self._rooms.get_membership(room_id, user_id)
            membership = row.membership if row is not None else None
        summary = await self._directory.get_room_summary(room_id)
        if membership not in _MEMBER_STATES and not (
            summary["world_readable"] or summary["join_rule"] in _OPEN_JOIN_RULES
        ):
            raise hidden
        state = await self._state.get_current_state_events(
            room_id, [("m.room.encryption", ""), ("m.room.join_rules", "")]
        )
        out = dict(summary)
        out["room_version"] = room.room_version
        encryption = state.get(("m.room.encryption", ""))
        algorithm = encryption.content.get("algorithm") if encryption else None
        if isinstance(algorithm, str):
            out["encryption"] = algorithm
        join_rules = state.get(("m.room.join_rules", ""))
        allowed = _allowed_room_ids(join_rules.content if join_rules else {})
        if allowed:
            out["allowed_room_ids"] = allowed
        if user_id is not None:
            out["membership"] = membership or "leave"
        return out


class RoomInitialSyncService:
    def __init__(
        self,
        *,
        reading: RoomReadService,
        rooms: RoomRecords,
        directory: RoomDescriptions,
    ) -> None:
        self._reading = reading
        self._rooms = rooms
        self._directory = directory

    async def get_room_initial_sync(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        *,
        limit: int = INITIAL_SYNC_MESSAGES,
    ) -> JsonDict:
        reader = Reader(user_id, device_id)
        # Access (403 for non-members of rooms that are not world-readable) and the
        # state as of a former member's leave both come from the read service.
        state = await self._reading.get_state(reader, room_id)
        page = await self._reading.get_messages(
            reader,
            room_id,
            from_token=None,
            to_token=None,
            direction="b",
            limit=max(0, limit),
            flt=None,
        )
        older = page.get("end") or RoomToken(0, 0).encode()
        out: JsonDict = {
            "room_id": room_id,
            "messages": {
                "chunk": list(reversed(page["chunk"])),
                "start": older,
                "end": page["start"],
            },
            "state": state,
            "visibility": await self._directory.get_visibility(room_id),
        }
        row = await self._rooms.get_membership(room_id, user_id)
        if row is not None:
            out["membership"] = row.membership
        return out
