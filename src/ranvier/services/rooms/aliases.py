"""Room aliases and the published room directory.

Spec: C-S API > Rooms > Room aliases; Published room directory. Only local aliases
(`#x:our.server`) are managed here; remote ones need a federation query (federation's
seam: `GET /_matrix/federation/v1/query/directory`), so they resolve to 404 until then.

* Creating an alias needs membership of the room (as Synapse's default
  `require_membership_for_aliases`).
* Deleting one is allowed to its creator and to users who may send
  `m.room.canonical_alias` in the room; the canonical alias event is updated to drop it.
* Publishing a room needs the same power; invisible rooms (not published) are never
  listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, forbidden, invalid_param, not_found
from ranvier.core.ids import InvalidIdentifierError, parse_room_alias
from ranvier.core.visibility import WORLD_READABLE, history_visibility_of
from ranvier.services.rooms.remote import RemoteDirectory
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.storage.stores.rooms import RoomStore
from ranvier.util.clock import Clock

__all__ = [
    "AliasLookup",
    "DirectoryService",
    "PublicRoomsFilter",
    "validate_alias_localpart",
]

JsonDict = dict[str, Any]

_BAD_ALIAS_CHARS = re.compile(r"[\s:#]")
CANONICAL_ALIAS = "m.room.canonical_alias"


class AliasLookup(Protocol):
    async def get_alias(self, alias: str) -> tuple[str, str] | None: ...


class CanonicalAliasSender(Protocol):
    async def send_canonical_alias(
        self, room_id: str, sender: str, content: JsonDict
    ) -> None: ...


def validate_alias_localpart(localpart: str) -> None:
    if not localpart or _BAD_ALIAS_CHARS.search(localpart):
        raise invalid_param("Invalid characters in room alias name.")
    if len(localpart.encode()) > 200:
        raise invalid_param("Room alias name is too long.")


@dataclass(frozen=True, slots=True)
class PublicRoomsFilter:
    generic_search_term: str | None = None
    # None: every type; otherwise the accepted `type`s (None in the list = no type).
    room_types: Sequence[str | None] | None = None


class AppServiceAliases(Protocol):
    """Application services' alias namespaces (Application Service API)."""

    def may_create_alias(self, user_id: str, alias: str) -> bool:
        """False when `alias` is in a service's exclusive namespace and `user_id` is
        not one of that service's users."""
        ...

    async def query_alias(self, alias: str) -> bool:
        """Ask the service whose namespace holds `alias` to create it; True if it
        says it did."""
        ...


class DirectoryService:
    def __init__(
        self,
        *,
        server_name: str,
        rooms: RoomStore,
        state: RoomStateReader,
        clock: Clock,
        remote: RemoteDirectory | None = None,
        app_services: AppServiceAliases | None = None,
    ) -> None:
        self._server_name = server_name
        self._remote = remote
        self._app_services = app_services
        self._rooms = rooms
        self._state = state
        self._clock = clock

    def _parse_local(self, alias: str) -> str:
        try:
            parsed = parse_room_alias(alias)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None
        if parsed.domain != self._server_name:
            raise invalid_param("Room alias must be on this server.")
        validate_alias_localpart(parsed.alias)
        return alias

    # -- aliases -------------------------------------------------------------------------
    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """(room_id, servers) for an alias; 404 when unknown. Other servers' aliases
        are asked of their server."""
        try:
            parsed = parse_room_alias(alias)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None
        if parsed.domain != self._server_name and self._remote is not None:
            return await self._remote.query_directory(alias)
        row = await self._rooms.get_alias(alias)
        # Spec: an unknown alias in a service's namespace is first asked of the
        # service, which may create the room (portal rooms of bridges).
        if (
            row is None
            and self._app_services is not None
            and await self._app_services.query_alias(alias)
        ):
            row = await self._rooms.get_alias(alias)
        if row is None:
            raise not_found(f"Room alias {alias} not found.")
        return row[0], [self._server_name]

    async def create_alias(self, user_id: str, alias: str, room_id: str) -> None:
        self._parse_local(alias)
        if self._app_services is not None and not self._app_services.may_create_alias(
            user_id, alias
        ):
            raise MatrixError(
                400, "M_EXCLUSIVE", "This alias is reserved by an application service."
            )
        if await self._rooms.get_room(room_id) is None:
            raise not_found("Unknown room.")
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership != "join":
            raise forbidden("You must be joined to the room to give it an alias.")
        created = await self._rooms.create_alias(
            alias, room_id, user_id, self._clock.time_msec()
        )
        if not created:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists.")

    async def delete_alias(
        self, user_id: str, alias: str, canonical: CanonicalAliasSender
    ) -> None:
        self._parse_local(alias)
        row = await self._rooms.get_alias(alias)
        if row is None:
            raise not_found(f"Room alias {alias} not found.")
        room_id, creator = row
        if creator != user_id and not await self._state.user_can_send_state(
            room_id, user_id, CANONICAL_ALIAS
        ):
            raise forbidden("You may not delete this alias.")
        await self._rooms.delete_alias(alias)
        await self._drop_from_canonical(room_id, user_id, alias, canonical)

    async def _drop_from_canonical(
        self, room_id: str, user_id: str, alias: str, canonical: CanonicalAliasSender
    ) -> None:
        content = await self._state.get_current_content(room_id, CANONICAL_ALIAS)
        if content is None:
            return
        new = dict(content)
        alt = new.get("alt_aliases")
        changed = False
        if new.get("alias") == alias:
            del new["alias"]
            changed = True
        if isinstance(alt, list) and alias in alt:
            new["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if not changed:
            return
        try:
            await canonical.send_canonical_alias(room_id, user_id, new)
        except MatrixError:
            # The alias is gone either way; a user without power over the canonical
            # alias event leaves it stale, as Synapse does.
            return

    async def get_local_aliases(self, room_id: str) -> list[str]:
        return await self._rooms.get_aliases_for_room(room_id)

    async def check_canonical_alias_content(
        self, room_id: str, content: JsonDict
    ) -> None:
        """`m.room.canonical_alias` may only name valid aliases of this room (local ones
        are checked against the directory); 400 M_BAD_ALIAS otherwise."""
        aliases: list[Any] = []
        if "alias" in content and content["alias"] is not None:
            aliases.append(content["alias"])
        alt = content.get("alt_aliases")
        if alt is not None:
            if not isinstance(alt, list):
                raise invalid_param("'alt_aliases' must be a list of aliases.")
            aliases.extend(alt)
        for alias in aliases:
            if not isinstance(alias, str):
                raise invalid_param("Aliases must be strings.")
            try:
                parsed = parse_room_alias(alias)
            except InvalidIdentifierError as e:
                raise invalid_param(str(e)) from None
            if parsed.domain != self._server_name:
                continue
            row = await self._rooms.get_alias(alias)
            if row is None or row[0] != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"Alias {alias} does not point to this room."
                )

    # -- published room directory ---------------------------------------------------------
    async def get_visibility(self, room_id: str) -> str:
        room = await self._rooms.get_room(room_id)
        if room is None:
            raise not_found("Unknown room.")
        return "public" if room.is_public else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise invalid_param("'visibility' must be 'public' or 'private'.")
        if await self._rooms.get_room(room_id) is None:
            raise not_found("Unknown room.")
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership != "join":
            raise forbidden("You must be joined to the room to publish it.")
        if not await self._state.user_can_send_state(room_id, user_id, CANONICAL_ALIAS):
            raise forbidden(
                "You need the power to change the room's aliases to publish it."
            )
        await self._rooms.set_room_is_public(room_id, visibility == "public")

    async def get_public_rooms(
        self, *, limit: int | None, since: str | None, flt: PublicRoomsFilter
    ) -> JsonDict:
        offset = _parse_since(since)
        rooms = await self._rooms.get_public_rooms()
        chunk: list[JsonDict] = []
        for room_id, members in rooms:
            entry = await self._room_chunk(room_id, members)
            if _matches(entry, flt):
                chunk.append(entry)
        total = len(chunk)
        end = total if limit is None else offset + max(0, limit)
        out: JsonDict = {"chunk": chunk[offset:end], "total_room_count_estimate": total}
        if end < total:
            out["next_batch"] = f"p{end}"
        if offset > 0:
            out["prev_batch"] = f"p{max(0, offset - (limit or offset))}"
        return out

    async def get_room_summary(self, room_id: str) -> JsonDict:
        """The public-rooms entry of any room, published or not (the federation
        hierarchy API describes rooms this way)."""
        counts = await self._rooms.get_joined_member_counts([room_id])
        return await self._room_chunk(room_id, counts.get(room_id, 0))

    async def get_remote_public_rooms(
        self,
        server: str,
        *,
        limit: int | None,
        since: str | None,
        search_filter: Mapping[str, Any] | None = None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> JsonDict:
        """The client's `server=`: another server's published rooms."""
        if self._remote is None:
            raise invalid_param("This server does not federate.")
        return await self._remote.get_public_rooms(
            server,
            limit=limit,
            since=since,
            search_filter=search_filter,
            include_all_networks=include_all_networks,
            third_party_instance_id=third_party_instance_id,
        )

    async def _room_chunk(self, room_id: str, members: int) -> JsonDict:
        state = await self._state.get_current_state_events(
            room_id,
            [
                ("m.room.name", ""),
                ("m.room.topic", ""),
                ("m.room.canonical_alias", ""),
                ("m.room.avatar", ""),
                ("m.room.join_rules", ""),
                ("m.room.history_visibility", ""),
                ("m.room.guest_access", ""),
                ("m.room.create", ""),
            ],
        )

        def field(etype: str, key: str) -> Any:
            ev = state.get((etype, ""))
            value = ev.content.get(key) if ev is not None else None
            return value if isinstance(value, str) else None

        hv = state.get(("m.room.history_visibility", ""))
        entry: JsonDict = {
            "room_id": room_id,
            "num_joined_members": members,
            "world_readable": history_visibility_of(hv.content if hv else None)
            == WORLD_READABLE,
            "guest_can_join": field("m.room.guest_access", "guest_access")
            == "can_join",
            "join_rule": field("m.room.join_rules", "join_rule") or "invite",
        }
        optional = {
            "name": field("m.room.name", "name"),
            "topic": field("m.room.topic", "topic"),
            "canonical_alias": field("m.room.canonical_alias", "alias"),
            "avatar_url": field("m.room.avatar", "url"),
            "room_type": field("m.room.create", "type"),
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        return entry


def _parse_since(since: str | None) -> int:
    if since is None or since == "":
        return 0
    if not since.startswith("p") or not since[1:].isdigit() or len(since) > 12:
        raise invalid_param("Invalid 'since' token.")
    return int(since[1:])


def _matches(entry: JsonDict, flt: PublicRoomsFilter) -> bool:
    if flt.room_types is not None and entry.get("room_type") not in flt.room_types:
        return False
    term = (flt.generic_search_term or "").strip().casefold()
    if not term:
        return True
    haystack = " ".join(
        str(entry.get(k, "")) for k in ("name", "topic", "canonical_alias", "room_id")
    ).casefold()
    return term in haystack
