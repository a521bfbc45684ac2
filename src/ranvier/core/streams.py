"""Stream positions and the `/sync` token (pure).

Spec: Client-Server API > Syncing. `next_batch` is opaque to clients; ours combines one
position per stream a sync reads from, in a fixed order:

    s<events>_<account_data>_<receipts>_<typing>_<presence>_<to_device>_<device_lists>

Every position is a non-negative integer and only ever grows (typing restarts at 0 with the
process, which the sync service tolerates). A token that does not parse is a client error
(400 M_INVALID_PARAM), never a 500.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final


class StreamKey(enum.Enum):
    """The streams a sync token carries, in token order."""

    EVENTS = "events"
    ACCOUNT_DATA = "account_data"
    RECEIPTS = "receipts"
    TYPING = "typing"
    PRESENCE = "presence"
    TO_DEVICE = "to_device"
    DEVICE_LISTS = "device_lists"


_ORDER: Final = tuple(StreamKey)
# Positions never exceed a signed 64-bit integer (the databases' BIGINT).
_MAX_POSITION: Final = 2**63 - 1


class InvalidTokenError(ValueError):
    """The string is not a sync token this server issued."""


@dataclass(frozen=True, slots=True)
class SyncToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0

    def get(self, key: StreamKey) -> int:
        value: int = getattr(self, key.value)
        return value

    def with_position(self, key: StreamKey, position: int) -> SyncToken:
        return replace(self, **{key.value: position})

    def advanced_to(self, key: StreamKey, position: int) -> SyncToken:
        """This token with `key` moved forward to `position` (never backwards)."""
        if position <= self.get(key):
            return self
        return self.with_position(key, position)

    def is_after(self, other: SyncToken) -> bool:
        """True if any stream of `self` is ahead of `other`."""
        return any(self.get(k) > other.get(k) for k in _ORDER)

    def encode(self) -> str:
        return "s" + "_".join(str(self.get(k)) for k in _ORDER)

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def decode(cls, text: str) -> SyncToken:
        if not text.startswith("s"):
            raise InvalidTokenError("sync tokens start with 's'")
        parts = text[1:].split("_")
        if len(parts) != len(_ORDER):
            raise InvalidTokenError("wrong number of stream positions")
        values: dict[str, int] = {}
        for key, part in zip(_ORDER, parts, strict=True):
            # isdigit alone accepts non-ASCII digits ("²") that int() then rejects.
            if not (part.isascii() and part.isdigit()) or len(part) > 19:
                raise InvalidTokenError("stream positions are decimal integers")
            value = int(part)
            if value > _MAX_POSITION:
                raise InvalidTokenError("stream position out of range")
            values[key.value] = value
        return cls(**values)
