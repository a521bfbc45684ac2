"""Pagination tokens of a room timeline (`/messages` `from`/`to`, `/context` `start`/`end`,
sync's per-room `prev_batch`). Pure.

A position in a room's timeline is (depth, stream_ordering): events are ordered by
depth (topological) and, within a depth, by their stream position. Two textual forms:

* `t<depth>-<stream>`: a topological position, what this server hands out;
* `s<stream>` or a full sync token `s<events>_<...>`: a stream position only (sync's
  `next_batch` may be passed as `from`); the reader turns it into a topological position
  by looking up the room's last event at or before that stream position.

Anything else is a client error (400 M_INVALID_PARAM), never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["InvalidRoomTokenError", "RoomToken", "parse_room_token"]

_MAX: Final = 2**63 - 1


class InvalidRoomTokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class RoomToken:
    """`depth` is None for a stream-only token."""

    stream: int
    depth: int | None = None

    def encode(self) -> str:
        if self.depth is None:
            return f"s{self.stream}"
        return f"t{self.depth}-{self.stream}"

    def __str__(self) -> str:
        return self.encode()


def _number(text: str) -> int:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not digits or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise InvalidRoomTokenError("token positions are decimal integers")
    value = -int(digits) if negative else int(digits)
    if abs(value) > _MAX:
        raise InvalidRoomTokenError("token position out of range")
    return value


def parse_room_token(text: str) -> RoomToken:
    if text.startswith("t"):
        depth, sep, stream = text[1:].partition("-")
        if not sep:
            raise InvalidRoomTokenError(
                "topological tokens look like t<depth>-<stream>"
            )
        return RoomToken(stream=_number(stream), depth=_number(depth))
    if text.startswith("s"):
        # A sync token carries the events position first; the rest is not ours.
        return RoomToken(stream=_number(text[1:].split("_", 1)[0]))
    raise InvalidRoomTokenError("unrecognised pagination token")
