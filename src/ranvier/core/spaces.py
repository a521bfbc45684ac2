"""Spaces (pure): which `m.space.child` events count, their order, who may see a room,
and the hierarchy's pagination token.

Spec: C-S API > Spaces. A child is listed only while its `m.space.child` content has a
non-empty `via` (an empty content removes it). Children are ordered by their `order`
string (printable ASCII, at most 50 characters; any other value counts as absent,
and rooms without one come after those with one), then by the child event's
`origin_server_ts`, then by room ID.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "SPACE_CHILD",
    "HierarchyToken",
    "InvalidHierarchyToken",
    "SpaceChild",
    "ordered_children",
    "room_is_previewable",
]

SPACE_CHILD: Final = "m.space.child"
_ORDER_RE: Final = re.compile(r"[\x20-\x7e]{1,50}")
_TOKEN_RE: Final = re.compile(r"(\d{1,9})_(\d{1,3})_([01])_([0-9a-f]{16})")

# Join rules under which anyone may look at a room (spec: the hierarchy lists rooms the
# user may join or knock on); restricted rooms need membership of an allowed room.
_OPEN_JOIN_RULES: Final = frozenset({"public", "knock", "knock_restricted"})
_RESTRICTED_JOIN_RULES: Final = frozenset({"restricted", "knock_restricted"})


@dataclass(frozen=True, slots=True)
class SpaceChild:
    room_id: str
    via: tuple[str, ...]
    suggested: bool
    order: str | None
    origin_server_ts: int
    sender: str
    content: Mapping[str, Any]

    def stripped(self) -> dict[str, Any]:
        """The child as a stripped state event with `origin_server_ts`."""
        return {
            "type": SPACE_CHILD,
            "state_key": self.room_id,
            "sender": self.sender,
            "content": dict(self.content),
            "origin_server_ts": self.origin_server_ts,
        }


def parse_space_child(
    room_id: str, content: Mapping[str, Any], sender: str, origin_server_ts: int
) -> SpaceChild | None:
    """The child named by an `m.space.child` event, or None if it is removed/invalid."""
    via = content.get("via")
    if not isinstance(via, list) or not via:
        return None
    servers = tuple(v for v in via if isinstance(v, str))
    if not servers:
        return None
    order = content.get("order")
    return SpaceChild(
        room_id=room_id,
        via=servers,
        suggested=content.get("suggested") is True,
        order=order if isinstance(order, str) and _ORDER_RE.fullmatch(order) else None,
        origin_server_ts=origin_server_ts,
        sender=sender,
        content=content,
    )


def ordered_children(
    children: Iterable[SpaceChild], *, suggested_only: bool = False
) -> list[SpaceChild]:
    """The children in the spec's order (optionally only the suggested ones)."""
    kept = [c for c in children if c.suggested or not suggested_only]
    return sorted(
        kept,
        key=lambda c: (
            c.order is None,
            c.order or "",
            c.origin_server_ts,
            c.room_id,
        ),
    )


def room_is_previewable(
    *,
    join_rule: str | None,
    world_readable: bool,
    membership: str | None,
    in_allowed_room: bool,
) -> bool:
    """May the user see this room in a hierarchy (spec: Spaces, the `rooms` list)?
    Banned users may not (the spec's example of a refusal)."""
    if membership == "ban":
        return False
    if membership in ("join", "invite"):
        return True
    if world_readable or join_rule in _OPEN_JOIN_RULES:
        return True
    return join_rule in _RESTRICTED_JOIN_RULES and in_allowed_room


class InvalidHierarchyToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class HierarchyToken:
    """Where a page starts in the walk, bound to the walk's room and parameters (the
    spec forbids changing `max_depth` or `suggested_only` while paginating)."""

    offset: int
    max_depth: int
    suggested_only: bool
    room_id: str

    def encode(self) -> str:
        return (
            f"{self.offset}_{self.max_depth}_{int(self.suggested_only)}_"
            f"{_room_tag(self.room_id)}"
        )

    @staticmethod
    def decode(token: str, room_id: str) -> HierarchyToken:
        m = _TOKEN_RE.fullmatch(token)
        if m is None or m.group(4) != _room_tag(room_id):
            raise InvalidHierarchyToken("Unknown pagination token.")
        return HierarchyToken(
            int(m.group(1)), int(m.group(2)), m.group(3) == "1", room_id
        )


def _room_tag(room_id: str) -> str:
    return hashlib.sha256(room_id.encode()).hexdigest()[:16]
