"""Federation queries (spec: S-S API > Querying for information; Public room directory;
Spaces; OpenID).

* directory: a LOCAL alias -> room ID and the servers in the room (ours first);
* profile: a LOCAL user's `displayname` / `avatar_url` (or one of them);
* public rooms: the rooms published in our directory;
* hierarchy: a space (or room) we know and its direct children we know, with their
  `m.space.child` state; children the requester may not see are listed as
  inaccessible. A room is visible to a remote server when its join rule lets outsiders
  in (public, knock, restricted), it is world-readable, or the server is in it;
* OpenID userinfo: the user an OpenID token was issued to (401 `M_UNKNOWN_TOKEN` for any
  other token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError, invalid_param, not_found
from ranvier.core.events.event import Event, StateKey
from ranvier.core.ids import InvalidIdentifierError, domain_of, parse_room_alias
from ranvier.services.federation.access import RoomAccess
from ranvier.services.rooms.aliases import PublicRoomsFilter
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.util.clock import Clock

__all__ = ["FederationQueries", "NoOpenIdTokens", "OpenIdTokens"]

JsonDict = dict[str, Any]

SPACE_CHILD: Final = "m.space.child"
OPEN_JOIN_RULES: Final = frozenset(
    {"public", "knock", "knock_restricted", "restricted"}
)
MAX_CHILDREN: Final = 50


class AliasDirectory(Protocol):
    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]: ...

    async def get_public_rooms(
        self, *, limit: int | None, since: str | None, flt: PublicRoomsFilter
    ) -> JsonDict: ...

    async def get_room_summary(self, room_id: str) -> JsonDict: ...


class Profiles(Protocol):
    async def get_profile(self, user_id: str) -> JsonDict: ...


class RoomState(Protocol):
    async def get_current_state(
        self, room_id: str
    ) -> Mapping[StateKey, StoredEvent]: ...


class OpenIdTokens(Protocol):
    async def get_user_for_openid_token(self, token: str, now_ms: int) -> str | None:
        """The user the token was issued to, if it exists and has not expired."""
        ...


class NoOpenIdTokens:
    """No OpenID tokens are issued yet: every token is unknown."""

    async def get_user_for_openid_token(self, token: str, now_ms: int) -> str | None:
        return None


class FederationQueries:
    def __init__(
        self,
        *,
        server_name: str,
        directory: AliasDirectory,
        access: RoomAccess,
        profiles: Profiles,
        state: RoomState,
        openid: OpenIdTokens,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._directory = directory
        self._access = access
        self._profiles = profiles
        self._state = state
        self._openid = openid
        self._clock = clock

    def _require_local(self, identifier: str, what: str) -> None:
        try:
            local = domain_of(identifier) == self._server_name
        except InvalidIdentifierError:
            raise invalid_param(f"Invalid {what}.") from None
        if not local:
            raise invalid_param(f"The {what} is not on this server.")

    async def query_directory(self, alias: str) -> JsonDict:
        try:
            parse_room_alias(alias)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None
        self._require_local(alias, "room alias")
        room_id, _ = await self._directory.resolve_alias(alias)
        servers = await self._access.get_servers_in_room(room_id)
        ordered = [self._server_name, *(s for s in servers if s != self._server_name)]
        return {"room_id": room_id, "servers": ordered}

    async def query_profile(self, user_id: str, field: str | None) -> JsonDict:
        self._require_local(user_id, "user ID")
        if field is not None and field not in ("displayname", "avatar_url"):
            raise invalid_param("'field' must be displayname or avatar_url.")
        profile = await self._profiles.get_profile(user_id)
        keys = (field,) if field is not None else ("displayname", "avatar_url")
        return {k: profile[k] for k in keys if profile.get(k) is not None}

    async def get_public_rooms(
        self, *, limit: int | None, since: str | None, flt: PublicRoomsFilter
    ) -> JsonDict:
        return await self._directory.get_public_rooms(limit=limit, since=since, flt=flt)

    async def get_openid_userinfo(self, token: str) -> JsonDict:
        user_id = await self._openid.get_user_for_openid_token(
            token, self._clock.time_msec()
        )
        if user_id is None:
            raise MatrixError(
                401, "M_UNKNOWN_TOKEN", "Unknown or expired OpenID token."
            )
        return {"sub": user_id}

    # -- spaces ---------------------------------------------------------------------------
    async def get_hierarchy(
        self, origin: str, room_id: str, *, suggested_only: bool
    ) -> JsonDict:
        if await self._access.room_version_or_none(room_id) is None:
            raise not_found("Unknown room.")
        if not await self._accessible(origin, room_id):
            raise not_found("Unknown room.")
        room, child_ids = await self._summary(room_id, suggested_only)
        children: list[JsonDict] = []
        inaccessible: list[str] = []
        for child_id in child_ids[:MAX_CHILDREN]:
            if await self._access.room_version_or_none(child_id) is None:
                continue
            if not await self._accessible(origin, child_id):
                inaccessible.append(child_id)
                continue
            summary, _ = await self._summary(child_id, suggested_only)
            children.append(summary)
        return {
            "room": room,
            "children": children,
            "inaccessible_children": inaccessible,
        }

    async def _accessible(self, origin: str, room_id: str) -> bool:
        if not await self._access.is_server_allowed(room_id, origin):
            return False
        state = await self._state.get_current_state(room_id)
        rules = _event(state.get(("m.room.join_rules", "")))
        if rules is not None and rules.content.get("join_rule") in OPEN_JOIN_RULES:
            return True
        history = _event(state.get(("m.room.history_visibility", "")))
        if history is not None and (
            history.content.get("history_visibility") == "world_readable"
        ):
            return True
        return await self._access.is_server_in_room(room_id, origin)

    async def _summary(
        self, room_id: str, suggested_only: bool
    ) -> tuple[JsonDict, list[str]]:
        summary = await self._directory.get_room_summary(room_id)
        state = await self._state.get_current_state(room_id)
        children_state: list[JsonDict] = []
        for (etype, skey), stored in sorted(state.items()):
            event = _event(stored)
            if etype != SPACE_CHILD or event is None:
                continue
            via = event.content.get("via")
            if not isinstance(via, list) or not via:
                continue  # a child without `via` is removed
            if suggested_only and event.content.get("suggested") is not True:
                continue
            children_state.append(
                {
                    "type": etype,
                    "state_key": skey,
                    "sender": event.sender,
                    "content": dict(event.content),
                    "origin_server_ts": event.origin_server_ts,
                }
            )
        summary["children_state"] = children_state
        allowed = _allowed_rooms(_event(state.get(("m.room.join_rules", ""))))
        if allowed:
            summary["allowed_room_ids"] = allowed
        return summary, [c["state_key"] for c in children_state]


def _event(stored: StoredEvent | None) -> Event | None:
    return stored.event if stored is not None else None


def _allowed_rooms(rules: Event | None) -> Sequence[str]:
    if rules is None or rules.content.get("join_rule") not in (
        "restricted",
        "knock_restricted",
    ):
        return []
    allow = rules.content.get("allow")
    return [
        a["room_id"]
        for a in (allow if isinstance(allow, list) else [])
        if isinstance(a, dict)
        and a.get("type") == "m.room_membership"
        and isinstance(a.get("room_id"), str)
    ]
