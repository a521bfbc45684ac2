"""Room upgrades (`POST /rooms/{roomId}/upgrade`; spec: C-S API > Modules > Room Upgrades).

The server, per the spec's steps:

1. checks the requester may send `m.room.tombstone` in the old room;
2. creates the new room (through `RoomCreationService`, so it is one transaction) with
   `predecessor` in its create content (before v12 the tombstone of step 4 is sent
   first, to a room ID reserved for the new room, so `predecessor.event_id` names it,
   as Synapse; since v12 the new room's ID is its create event's hash, so the room comes
   first and `event_id` is the old room's last event), the old room's `type`/`m.federate`, and a copy
   of its state: join rules, history visibility, guest access, name, topic, avatar,
   encryption, server ACL, canonical alias and power levels (sent last, so the other
   copies are sent while the upgrader still holds the creator's power);
3. moves the local aliases and the directory listing to the new room;
4. sends `m.room.tombstone` in the old room;
5. clears the old room's canonical alias and restricts it: `events_default` and
   `invite` raised to max(50, users_default + 1), so ordinary members stop talking
   there.

Steps after 2 are best-effort where a missing permission must not undo the upgrade
(the old room's power levels may be out of the upgrader's reach), as Synapse does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from ranvier.core.auth.levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_power_levels_content,
    get_send_level,
    get_user_power_level,
)
from ranvier.core.auth.validation import read_power_level
from ranvier.core.errors import MatrixError, forbidden, invalid_param, not_found
from ranvier.core.events.event import Event, StateKey
from ranvier.core.ids import InvalidIdentifierError, parse_user_id
from ranvier.core.room_presets import CREATOR_LEVEL, StateEventSpec
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.services.rooms.creation import CreateRoomRequest, RoomCreationService
from ranvier.storage.stores.rooms import RoomRow

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Copied into the new room, in this order; power levels are handled apart (sent last).
COPIED_STATE: tuple[str, ...] = (
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.canonical_alias",
)
# Copied from the old create event's content (spec: "type" since v1.2, spaces).
COPIED_CREATE_KEYS: tuple[str, ...] = ("type", "m.federate")
RESTRICTED_LEVEL = 50
_LEVEL_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "kick",
    "redact",
    "invite",
    "historical",
)


class CurrentState(Protocol):
    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]: ...


class LatestEvents(Protocol):
    async def get_forward_extremities(self, room_id: str) -> list[tuple[str, int]]: ...


class StateSender(Protocol):
    async def send_state(
        self,
        *,
        user_id: str,
        room_id: str,
        event_type: str,
        state_key: str,
        content: JsonDict,
    ) -> str: ...


class RoomRecords(Protocol):
    async def get_aliases_for_room(self, room_id: str) -> list[str]: ...

    async def get_alias(self, alias: str) -> tuple[str, str] | None: ...

    async def delete_alias(self, alias: str) -> bool: ...

    async def create_alias(
        self, alias: str, room_id: str, creator: str, now_ms: int
    ) -> bool: ...

    async def get_room(self, room_id: str) -> RoomRow | None: ...

    async def set_room_is_public(self, room_id: str, is_public: bool) -> None: ...


def _int_levels(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, int] = {}
    for key, level in value.items():
        parsed = read_power_level(level)
        if isinstance(key, str) and parsed is not None:
            out[key] = parsed
    return out


def copy_power_levels(
    content: Mapping[str, Any],
    *,
    upgrader: str,
    creators: Collection[str],
    new_version: RoomVersion,
) -> JsonDict:
    """The old power levels as integers (string levels are refused since v10), with the
    new room's creators taken out of `users` since v12 (they have infinite power there)
    and the upgrader kept at the creator's level before v12."""
    out: JsonDict = {k: v for k, v in content.items() if k not in _LEVEL_KEYS}
    for key in _LEVEL_KEYS:
        if key in content:
            level = read_power_level(content[key])
            if level is not None:
                out[key] = level
    out["events"] = _int_levels(content.get("events"))
    users = _int_levels(content.get("users"))
    if new_version.privileged_creators:
        for creator in creators:
            users.pop(creator, None)
    else:
        users[upgrader] = max(users.get(upgrader, 0), CREATOR_LEVEL)
    out["users"] = users
    if isinstance(content.get("notifications"), Mapping):
        out["notifications"] = _int_levels(content["notifications"])
    return out


def restricted_power_levels(content: Mapping[str, Any]) -> JsonDict | None:
    """Step 5: the old room's power levels with `events_default` and `invite` raised,
    or None when they are already high enough."""
    users_default = read_power_level(content.get("users_default", 0)) or 0
    restricted = max(RESTRICTED_LEVEL, users_default + 1)
    out = dict(content)
    changed = False
    for key, default in (("events_default", 0), ("invite", 0)):
        current = read_power_level(content.get(key, default))
        if current is None or current < restricted:
            out[key] = restricted
            changed = True
    return out if changed else None


class RoomUpgradeService:
    def __init__(
        self,
        *,
        creation: RoomCreationService,
        state: CurrentState,
        sender: StateSender,
        rooms: RoomRecords,
        now_ms: Callable[[], int],
        latest: LatestEvents | None = None,
    ) -> None:
        self._latest = latest
        self._creation = creation
        self._state = state
        self._sender = sender
        self._rooms = rooms
        self._now_ms = now_ms
        # One upgrade of a room at a time in this process: a double click must not
        # create two replacement rooms.
        self._locks: dict[str, asyncio.Lock] = {}

    async def upgrade_room(
        self,
        user_id: str,
        room_id: str,
        new_version: str,
        additional_creators: Sequence[str] = (),
    ) -> str:
        """Upgrade `room_id`; the replacement room's ID."""
        rv = KNOWN_ROOM_VERSIONS.get(new_version)
        if rv is None:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Unsupported room version {new_version!r}.",
            )
        for creator in additional_creators:
            try:
                parse_user_id(creator)
            except InvalidIdentifierError:
                raise invalid_param(f"Invalid user ID {creator!r}.") from None
        # Kept after use: upgrades are rare, and dropping a lock a waiter still holds a
        # reference to would let a third request run beside it.
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            return await self._upgrade(user_id, room_id, rv, list(additional_creators))

    async def _old_state(self, user_id: str, room_id: str) -> dict[StateKey, Event]:
        keys: list[StateKey] = [(t, "") for t in COPIED_STATE]
        keys += [CREATE_KEY, POWER_LEVELS_KEY, ("m.room.member", user_id)]
        state = await self._state.get_current_state_events(room_id, keys)
        member = state.get(("m.room.member", user_id))
        if CREATE_KEY not in state:
            raise not_found("Unknown room.")
        if member is None or member.content.get("membership") != "join":
            raise forbidden("You are not joined to this room.")
        pl = get_power_levels_content(state)
        needed = get_send_level("m.room.tombstone", True, pl)
        if get_user_power_level(user_id, state) < needed:
            raise forbidden("You are not allowed to upgrade this room.")
        return state

    async def _predecessor(self, room_id: str) -> JsonDict:
        """`predecessor`: the old room and, since v1.16 optional but still "SHOULD be
        populated where possible", the last known event in it (its deepest forward
        extremity, before the tombstone)."""
        out: JsonDict = {"room_id": room_id}
        if self._latest is not None:
            extremities = await self._latest.get_forward_extremities(room_id)
            if extremities:
                out["event_id"] = extremities[0][0]
        return out

    async def _upgrade(
        self,
        user_id: str,
        room_id: str,
        rv: RoomVersion,
        additional_creators: list[str],
    ) -> str:
        state = await self._old_state(user_id, room_id)
        create = state[CREATE_KEY]
        creation_content: JsonDict = {
            k: create.content[k] for k in COPIED_CREATE_KEYS if k in create.content
        }
        # Before v12 the new room's ID is chosen first, so the tombstone naming it can be
        # sent first and the create event's `predecessor.event_id` is the tombstone (as
        # Synapse). Since v12 the create event's hash names the new room: it must exist
        # before the tombstone, and `predecessor.event_id` is the old room's last event.
        new_room_id = self._creation.reserve_room_id(rv)
        if new_room_id is not None:
            tombstone_id = await self._send_tombstone(user_id, room_id, new_room_id)
            creation_content["predecessor"] = {
                "room_id": room_id,
                "event_id": tombstone_id,
            }
        else:
            creation_content["predecessor"] = await self._predecessor(room_id)
        creators = {user_id}
        if rv.privileged_creators and additional_creators:
            creation_content["additional_creators"] = additional_creators
            creators.update(additional_creators)
        copied = [
            StateEventSpec(t, "", dict(state[(t, "")].content))
            for t in COPIED_STATE
            if (t, "") in state
        ]
        pl = copy_power_levels(
            get_power_levels_content(state),
            upgrader=user_id,
            creators=creators,
            new_version=rv,
        )
        copied.append(StateEventSpec("m.room.power_levels", "", pl))
        reserved = new_room_id
        new_room_id, _ = await self._creation.create_room(
            user_id,
            CreateRoomRequest(
                room_version=rv.identifier,
                creation_content=creation_content,
                initial_state=copied,
                room_id=reserved,
            ),
        )
        logger.info("upgrading %s to %s (%s)", room_id, new_room_id, rv.identifier)
        await self._move_aliases(room_id, new_room_id)
        if reserved is None:
            await self._send_tombstone(user_id, room_id, new_room_id)
        if ("m.room.canonical_alias", "") in state:
            # The aliases point to the new room now; the old one stops advertising them.
            await self._best_effort(user_id, room_id, "m.room.canonical_alias", {})
        restricted = restricted_power_levels(get_power_levels_content(state))
        if restricted is not None:
            await self._best_effort(user_id, room_id, "m.room.power_levels", restricted)
        return new_room_id

    async def _send_tombstone(
        self, user_id: str, room_id: str, new_room_id: str
    ) -> str:
        return await self._sender.send_state(
            user_id=user_id,
            room_id=room_id,
            event_type="m.room.tombstone",
            state_key="",
            content={
                "body": "This room has been replaced",
                "replacement_room": new_room_id,
            },
        )

    async def _move_aliases(self, old_room_id: str, new_room_id: str) -> None:
        for alias in await self._rooms.get_aliases_for_room(old_room_id):
            row = await self._rooms.get_alias(alias)
            if row is None or row[0] != old_room_id:
                continue
            if await self._rooms.delete_alias(alias):
                await self._rooms.create_alias(
                    alias, new_room_id, row[1], self._now_ms()
                )
        old = await self._rooms.get_room(old_room_id)
        if old is not None and old.is_public:
            await self._rooms.set_room_is_public(new_room_id, True)
            await self._rooms.set_room_is_public(old_room_id, False)

    async def _best_effort(
        self, user_id: str, room_id: str, event_type: str, content: JsonDict
    ) -> None:
        try:
            await self._sender.send_state(
                user_id=user_id,
                room_id=room_id,
                event_type=event_type,
                state_key="",
                content=content,
            )
        except MatrixError as e:
            # The upgrade stands: the tombstone already points members onwards.
            logger.warning("after upgrading %s, %s failed: %s", room_id, event_type, e)
