"""What a sync request asks for and what it answers, before JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ranvier.core.filters import Filter
from ranvier.core.streams import SyncToken

JsonDict = dict[str, Any]

# The long-poll `timeout` is capped (clients ask for 30 s; some for much longer).
MAX_TIMEOUT_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    filter: Filter
    since: SyncToken | None = None
    timeout_ms: int = 0
    full_state: bool = False
    set_presence: str | None = None
    use_state_after: bool = False

    @property
    def is_initial(self) -> bool:
        return self.since is None


@dataclass(slots=True)
class RoomsSection:
    join: dict[str, JsonDict] = field(default_factory=dict)
    invite: dict[str, JsonDict] = field(default_factory=dict)
    knock: dict[str, JsonDict] = field(default_factory=dict)
    leave: dict[str, JsonDict] = field(default_factory=dict)
    # Rooms joined since the token (sent with full state); not part of the JSON.
    newly_joined: set[str] = field(default_factory=set)

    def is_empty(self) -> bool:
        return not (self.join or self.invite or self.knock or self.leave)


@dataclass(slots=True)
class SyncResult:
    next_batch: SyncToken
    rooms: RoomsSection = field(default_factory=RoomsSection)
    account_data: list[JsonDict] = field(default_factory=list)
    presence: list[JsonDict] = field(default_factory=list)
    to_device: list[JsonDict] = field(default_factory=list)
    device_lists_changed: list[str] = field(default_factory=list)
    device_lists_left: list[str] = field(default_factory=list)
    one_time_keys_count: dict[str, int] = field(default_factory=dict)
    unused_fallback_key_types: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        """Nothing a long-poll should return early for (key counts do not count)."""
        return (
            self.rooms.is_empty()
            and not self.account_data
            and not self.presence
            and not self.to_device
            and not self.device_lists_changed
            and not self.device_lists_left
        )

    def to_json(self) -> JsonDict:
        return {
            "next_batch": self.next_batch.encode(),
            "rooms": {
                "join": self.rooms.join,
                "invite": self.rooms.invite,
                "knock": self.rooms.knock,
                "leave": self.rooms.leave,
            },
            "account_data": {"events": self.account_data},
            "presence": {"events": self.presence},
            "to_device": {"events": self.to_device},
            "device_lists": {
                "changed": self.device_lists_changed,
                "left": self.device_lists_left,
            },
            "device_one_time_keys_count": self.one_time_keys_count,
            "device_unused_fallback_key_types": self.unused_fallback_key_types,
            # Pre-1.2 clients (and some bots) still read the unstable name.
            "org.matrix.msc2732.device_unused_fallback_key_types": (
                self.unused_fallback_key_types
            ),
        }
