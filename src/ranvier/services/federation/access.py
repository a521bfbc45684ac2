"""Which servers may act in a room: server ACLs and "is this server in the room".

Spec: S-S API > Server Access Control Lists (inbound PDUs and EDUs from a denied origin
are dropped, room-scoped requests from it refused); for history, state and membership
endpoints the requesting server must have a joined user in the room, unless the room is
world-readable (as Synapse).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from ranvier.core.acl import SERVER_ACL_TYPE, server_is_allowed
from ranvier.core.errors import MatrixError, forbidden, not_found
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.room_versions import RoomVersion

__all__ = ["RoomAccess", "servers_of"]


class CurrentContent(Protocol):
    async def get_current_content(
        self, room_id: str, etype: str, state_key: str = ""
    ) -> Mapping[str, Any] | None: ...


class RoomMembersLookup(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...

    async def get_joined_user_ids(self, room_id: str) -> list[str]: ...


class WorldReadable(Protocol):
    async def is_world_readable(self, room_id: str) -> bool: ...


def servers_of(user_ids: Collection[str]) -> list[str]:
    """The distinct servers of `user_ids`, sorted."""
    out: set[str] = set()
    for user_id in user_ids:
        try:
            out.add(domain_of(user_id))
        except InvalidIdentifierError:
            continue
    return sorted(out)


class RoomAccess:
    def __init__(
        self,
        *,
        state: CurrentContent,
        rooms: RoomMembersLookup,
        visibility: WorldReadable,
    ) -> None:
        self._state = state
        self._rooms = rooms
        self._visibility = visibility

    async def is_server_allowed(self, room_id: str, server_name: str) -> bool:
        """The room's `m.room.server_acl` (current state) lets `server_name` take part."""
        acl = await self._state.get_current_content(room_id, SERVER_ACL_TYPE)
        return server_is_allowed(server_name, acl)

    async def check_acl(self, room_id: str, server_name: str) -> None:
        if not await self.is_server_allowed(room_id, server_name):
            raise forbidden("Server is banned from this room by its server ACL.")

    async def room_version(self, room_id: str) -> RoomVersion:
        rv = await self._rooms.get_room_version(room_id)
        if rv is None:
            raise not_found("Unknown room.")
        return rv

    async def room_version_or_none(self, room_id: str) -> RoomVersion | None:
        return await self._rooms.get_room_version(room_id)

    async def get_servers_in_room(self, room_id: str) -> list[str]:
        return servers_of(await self._rooms.get_joined_user_ids(room_id))

    async def is_server_in_room(self, room_id: str, server_name: str) -> bool:
        return server_name in await self.get_servers_in_room(room_id)

    async def check_can_read(self, origin: str, room_id: str) -> RoomVersion:
        """The room is known, the origin passes its ACL and has a joined user in it
        (or the room is world-readable): else 404 / 403."""
        rv = await self.room_version(room_id)
        await self.check_acl(room_id, origin)
        if await self.is_server_in_room(room_id, origin):
            return rv
        if await self._visibility.is_world_readable(room_id):
            return rv
        raise MatrixError(403, "M_FORBIDDEN", "Server is not in the room.")
