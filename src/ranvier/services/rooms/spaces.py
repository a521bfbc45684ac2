"""Space hierarchies and mutual rooms.

* `SpaceHierarchyService` — `GET /rooms/{roomId}/hierarchy` (spec v1.2, Spaces): the
  space tree walked depth first from the requested room, children in the spec's order
  (`core/spaces.py`), each room listed once. A room is listed when the requester may
  see it (joined or invited; public, knockable or world-readable; restricted with
  membership of an allowed room); hidden rooms are skipped with their subtree. Only
  rooms typed `m.space` have children. The requested room itself must be visible, or
  403. Rooms this server has no copy of are asked of the servers in their `via`
  (federation `GET /hierarchy`, `RemoteHierarchy`); the children listed in such an
  answer are used for the next level without asking again. Pages are offsets into the
  walk (at most `MAX_WALK` rooms), so no session is kept between requests.
* `MutualRoomsService` — `GET /v1/mutual_rooms` (spec v1.19, MSC2666): the rooms both
  users are joined to, sorted by room ID, in pages.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError, forbidden, invalid_param
from ranvier.core.events.event import Event, StateKey
from ranvier.core.ids import InvalidIdentifierError, parse_user_id
from ranvier.core.spaces import (
    SPACE_CHILD,
    HierarchyToken,
    InvalidHierarchyToken,
    SpaceChild,
    ordered_children,
    parse_space_child,
    room_is_previewable,
)
from ranvier.storage.stores.rooms import MembershipRow, RoomRow

logger = logging.getLogger(__name__)

__all__ = ["MutualRoomsService", "NoRemoteHierarchy", "SpaceHierarchyService"]

JsonDict = dict[str, Any]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 100
DEFAULT_MAX_DEPTH: Final = 10
MAX_DEPTH: Final = 50
# The longest walk a page may sit in: bounds the work of one request.
MAX_WALK: Final = 1000
MUTUAL_ROOMS_PAGE: Final = 100

_SUMMARY_KEYS: Final = (
    ("m.room.join_rules", ""),
    ("m.room.encryption", ""),
    ("m.room.create", ""),
)


class RoomDescriptions(Protocol):
    async def get_room_summary(self, room_id: str) -> JsonDict: ...


class RoomRecords(Protocol):
    async def get_room(self, room_id: str) -> RoomRow | None: ...

    async def get_membership(
        self, room_id: str, user_id: str
    ) -> MembershipRow | None: ...

    async def get_rooms_for_user(
        self, user_id: str, memberships: Collection[str] = ("join",)
    ) -> list[MembershipRow]: ...


class CurrentState(Protocol):
    async def get_current_state_ids(self, room_id: str) -> dict[StateKey, str]: ...

    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]: ...


class RemoteHierarchy(Protocol):
    async def get_remote_hierarchy(
        self, room_id: str, via: Sequence[str], *, suggested_only: bool
    ) -> JsonDict | None:
        """Another server's federation `/hierarchy` answer for a room, or None."""
        ...


class NoRemoteHierarchy:
    """Without federation no remote room can be described."""

    async def get_remote_hierarchy(
        self, room_id: str, via: Sequence[str], *, suggested_only: bool
    ) -> JsonDict | None:
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    summary: JsonDict
    children: list[SpaceChild]


@dataclass(slots=True)
class _Walk:
    user_id: str
    suggested_only: bool
    max_depth: int
    seen: set[str] = field(default_factory=set)
    # Summaries of remote rooms' children, from remote answers: (summary, hidden).
    remote: dict[str, JsonDict] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)


class SpaceHierarchyService:
    def __init__(
        self,
        *,
        directory: RoomDescriptions,
        rooms: RoomRecords,
        state: CurrentState,
        remote: RemoteHierarchy,
    ) -> None:
        self._directory = directory
        self._rooms = rooms
        self._state = state
        self._remote = remote

    async def get_hierarchy(
        self,
        user_id: str,
        room_id: str,
        *,
        suggested_only: bool = False,
        limit: int | None = None,
        max_depth: int | None = None,
        from_token: str | None = None,
    ) -> JsonDict:
        if limit is not None and limit < 1:
            raise invalid_param("'limit' must be greater than zero.")
        page = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        depth = min(DEFAULT_MAX_DEPTH if max_depth is None else max_depth, MAX_DEPTH)
        offset = 0
        if from_token is not None:
            token = _decode_token(from_token, room_id)
            if (token.max_depth, token.suggested_only) != (depth, suggested_only):
                raise invalid_param(
                    "'max_depth' and 'suggested_only' cannot change while paginating."
                )
            offset = token.offset
        walk = _Walk(user_id, suggested_only, depth)
        root = await self._entry(walk, room_id, ())
        if root is None:
            raise forbidden("You cannot view this room or it does not exist.")
        rooms: list[JsonDict] = []
        more = False
        position = 0
        async for summary in self._walk(walk, root, room_id):
            if position >= offset + page:
                more = True
                break
            if position >= offset:
                rooms.append(summary)
            position += 1
        out: JsonDict = {"rooms": rooms}
        if more and offset + page < MAX_WALK:
            out["next_batch"] = HierarchyToken(
                offset + page, depth, suggested_only, room_id
            ).encode()
        return out

    async def _walk(
        self, walk: _Walk, root: _Entry, root_id: str
    ) -> AsyncIterator[JsonDict]:
        """Depth first; a stack of (room, depth, entry if known, via)."""
        stack: list[tuple[str, int, _Entry | None, tuple[str, ...]]] = [
            (root_id, 0, root, ())
        ]
        walk.seen.add(root_id)
        produced = 0
        while stack and produced < MAX_WALK:
            room_id, depth, entry, via = stack.pop()
            if entry is None:
                entry = await self._entry(walk, room_id, via)
                if entry is None:
                    continue
            produced += 1
            yield entry.summary
            if depth >= walk.max_depth:
                continue
            fresh = [c for c in entry.children if c.room_id not in walk.seen]
            walk.seen.update(c.room_id for c in fresh)
            stack.extend((c.room_id, depth + 1, None, c.via) for c in reversed(fresh))

    async def _entry(
        self, walk: _Walk, room_id: str, via: Sequence[str]
    ) -> _Entry | None:
        """The room's hierarchy entry if the user may see it, else None."""
        if await self._rooms.get_room(room_id) is not None and await self._is_resident(
            room_id
        ):
            return await self._local_entry(walk, room_id)
        return await self._remote_entry(walk, room_id, via)

    async def _is_resident(self, room_id: str) -> bool:
        # A room we only know from an invite or a remote leave has no current state.
        ids = await self._state.get_current_state_ids(room_id)
        return ("m.room.create", "") in ids

    async def _local_entry(self, walk: _Walk, room_id: str) -> _Entry | None:
        ids = await self._state.get_current_state_ids(room_id)
        child_keys = [k for k in ids if k[0] == SPACE_CHILD]
        state = await self._state.get_current_state_events(
            room_id, [*_SUMMARY_KEYS, *child_keys]
        )
        summary = await self._directory.get_room_summary(room_id)
        join_rules = state.get(("m.room.join_rules", ""))
        allowed = _allowed_room_ids(join_rules.content if join_rules else {})
        membership = await self._rooms.get_membership(room_id, walk.user_id)
        if not room_is_previewable(
            join_rule=summary.get("join_rule"),
            world_readable=summary.get("world_readable") is True,
            membership=membership.membership if membership else None,
            in_allowed_room=await self._in_any(walk.user_id, allowed),
        ):
            return None
        room = await self._rooms.get_room(room_id)
        if room is not None:
            summary["room_version"] = room.room_version
        encryption = state.get(("m.room.encryption", ""))
        algorithm = encryption.content.get("algorithm") if encryption else None
        if isinstance(algorithm, str):
            summary["encryption"] = algorithm
        if allowed:
            summary["allowed_room_ids"] = allowed
        children: list[SpaceChild] = []
        if summary.get("room_type") == "m.space":
            parsed = (
                parse_space_child(key[1], ev.content, ev.sender, ev.origin_server_ts)
                for key, ev in state.items()
                if key[0] == SPACE_CHILD
            )
            children = ordered_children(
                (c for c in parsed if c is not None),
                suggested_only=walk.suggested_only,
            )
        summary["children_state"] = [c.stripped() for c in children]
        return _Entry(summary, children)

    async def _in_any(self, user_id: str, room_ids: Sequence[str]) -> bool:
        for room_id in room_ids:
            row = await self._rooms.get_membership(room_id, user_id)
            if row is not None and row.membership == "join":
                return True
        return False

    async def _remote_entry(
        self, walk: _Walk, room_id: str, via: Sequence[str]
    ) -> _Entry | None:
        if room_id in walk.hidden:
            return None
        summary = walk.remote.pop(room_id, None)
        if summary is None or (
            summary.get("room_type") == "m.space" and not summary["children_state"]
        ):
            # Unknown, or a space whose children we have not been told: ask.
            answer = await self._remote.get_remote_hierarchy(
                room_id, via, suggested_only=walk.suggested_only
            )
            if answer is None:
                return None
            summary = _remote_summary(answer.get("room"), room_id)
            if summary is None:
                return None
            for child in _as_list(answer.get("children")):
                child_summary = _remote_summary(child, None)
                if child_summary is not None:
                    walk.remote.setdefault(child_summary["room_id"], child_summary)
            walk.hidden.update(
                r for r in _as_list(answer.get("inaccessible_children"))
                if isinstance(r, str)
            )  # fmt: skip
        if not await self._remote_visible(walk.user_id, summary):
            return None
        return _Entry(summary, _remote_children(summary, walk.suggested_only))

    async def _remote_visible(self, user_id: str, summary: Mapping[str, Any]) -> bool:
        allowed = [
            r for r in _as_list(summary.get("allowed_room_ids")) if isinstance(r, str)
        ]
        membership = await self._rooms.get_membership(summary["room_id"], user_id)
        return room_is_previewable(
            join_rule=summary.get("join_rule"),
            world_readable=summary.get("world_readable") is True,
            membership=membership.membership if membership else None,
            in_allowed_room=await self._in_any(user_id, allowed),
        )


def _remote_summary(value: Any, room_id: str | None) -> JsonDict | None:
    """A room summary from another server, checked for the keys clients rely on."""
    if not isinstance(value, dict) or not isinstance(value.get("room_id"), str):
        return None
    if room_id is not None and value["room_id"] != room_id:
        return None
    if not isinstance(value.get("num_joined_members"), int):
        return None
    summary = dict(value)
    children = [
        c
        for c in _as_list(summary.get("children_state"))
        if isinstance(c, dict)
        and c.get("type") == SPACE_CHILD
        and isinstance(c.get("state_key"), str)
        and isinstance(c.get("content"), dict)
    ]
    summary["children_state"] = children
    return summary


def _remote_children(
    summary: Mapping[str, Any], suggested_only: bool
) -> list[SpaceChild]:
    if summary.get("room_type") != "m.space":
        return []
    parsed = (
        parse_space_child(
            c["state_key"],
            c["content"],
            str(c.get("sender", "")),
            ts if isinstance(ts := c.get("origin_server_ts"), int) else 0,
        )
        for c in summary["children_state"]
    )
    return ordered_children(
        (c for c in parsed if c is not None), suggested_only=suggested_only
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _allowed_room_ids(join_rules: Mapping[str, Any]) -> list[str]:
    if join_rules.get("join_rule") not in ("restricted", "knock_restricted"):
        return []
    return [
        a["room_id"]
        for a in _as_list(join_rules.get("allow"))
        if isinstance(a, Mapping)
        and a.get("type") == "m.room_membership"
        and isinstance(a.get("room_id"), str)
    ]


def _decode_token(token: str, room_id: str) -> HierarchyToken:
    try:
        return HierarchyToken.decode(token, room_id)
    except InvalidHierarchyToken as e:
        raise invalid_param(str(e)) from None


# --- mutual rooms ------------------------------------------------------------------------


class MutualRoomsService:
    def __init__(self, *, rooms: RoomRecords) -> None:
        self._rooms = rooms

    async def get_mutual_rooms(
        self, requester: str, user_id: str, from_token: str | None = None
    ) -> JsonDict:
        try:
            parse_user_id(user_id)
        except InvalidIdentifierError:
            raise invalid_param("'user_id' is not a valid user ID.") from None
        if user_id == requester:
            raise invalid_param("'user_id' must be another user.")
        after = _decode_room_token(from_token) if from_token is not None else None
        mine = {r.room_id for r in await self._rooms.get_rooms_for_user(requester)}
        theirs = {r.room_id for r in await self._rooms.get_rooms_for_user(user_id)}
        shared = sorted(mine & theirs)
        rest = [r for r in shared if after is None or r > after]
        page = rest[:MUTUAL_ROOMS_PAGE]
        out: JsonDict = {"joined": page, "count": len(shared)}
        if len(rest) > len(page):
            out["next_batch"] = _encode_room_token(page[-1])
        return out


def _encode_room_token(room_id: str) -> str:
    return base64.urlsafe_b64encode(room_id.encode()).decode().rstrip("=")


def _decode_room_token(token: str) -> str:
    try:
        room_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        room_id = ""
    if not room_id.startswith("!"):
        raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token.")
    return room_id
