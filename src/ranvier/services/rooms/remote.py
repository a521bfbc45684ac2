"""What the rooms services ask of federation when a room, alias, user or history is not
on this server (implemented by `services/federation/remote_*`, wired in `app/`).

The rooms services decide *when* to go remote (this server is not in the room, the
alias or user is another server's, pagination ran past our earliest event); the
implementations decide *how* (which endpoints, the checks on what comes back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["RemoteDirectory", "RemoteRoomOps", "RoomBackfill"]

JsonDict = dict[str, Any]


class RemoteRoomOps(Protocol):
    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        """Join through the first of `servers` that lets us; the join's event ID."""
        ...

    async def leave(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        """Leave a room this server is not in (reject an invite, retract a knock)."""
        ...

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str: ...

    async def invite(
        self, sender: str, room_id: str, target: str, content: JsonDict
    ) -> str:
        """Invite a user of another server into a room this server is in."""
        ...

    async def query_directory(self, alias: str) -> tuple[str, list[str]]:
        """(room_id, servers) of another server's alias."""
        ...


class RoomBackfill(Protocol):
    async def backfill(self, room_id: str, limit: int) -> bool:
        """Fetch up to `limit` events older than our earliest; True if any arrived."""
        ...


class RemoteDirectory(Protocol):
    async def query_directory(self, alias: str) -> tuple[str, list[str]]: ...

    async def get_public_rooms(
        self,
        server: str,
        *,
        limit: int | None,
        since: str | None,
        search_filter: Mapping[str, Any] | None = None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> JsonDict:
        """Another server's published rooms (its federation `/publicRooms`)."""
        ...
