"""The PDU value type shared by every layer.

An `Event` wraps the PDU JSON exactly as it was received or built (signatures, hashes and
`unsigned` included) plus its event ID, which for room v3+ is derived from the content and
so must be computed by whoever constructs the object (`ranvier.core.events.ids`).
Accessors hide the differences between event formats (v1 `[id, hashes]` pairs, v11
`redacts` in content, v12 room IDs derived from the create event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.core.room_versions import EventFormat, RoomVersion

JsonDict = dict[str, Any]
StateKey = tuple[str, str]


class Event:
    __slots__ = ("_data", "event_id", "room_version")

    def __init__(
        self, data: JsonDict, event_id: str, room_version: RoomVersion
    ) -> None:
        self._data = data
        self.event_id = event_id
        self.room_version = room_version

    # -- raw JSON -------------------------------------------------------------------------
    @property
    def data(self) -> JsonDict:
        """The PDU JSON. Treat as read-only: signatures and hashes cover it."""
        return self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    # -- common fields --------------------------------------------------------------------
    @property
    def type(self) -> str:
        return str(self._data["type"])

    @property
    def sender(self) -> str:
        return str(self._data["sender"])

    @property
    def content(self) -> Mapping[str, Any]:
        c = self._data.get("content")
        return c if isinstance(c, dict) else {}

    @property
    def state_key(self) -> str | None:
        sk = self._data.get("state_key")
        return sk if isinstance(sk, str) else None

    def is_state(self) -> bool:
        return "state_key" in self._data

    @property
    def state_tuple(self) -> StateKey:
        """(type, state_key) for state events; raises for non-state events."""
        sk = self._data["state_key"]
        return (self.type, str(sk))

    @property
    def room_id(self) -> str:
        rid = self._data.get("room_id")
        if isinstance(rid, str):
            return rid
        # Since room v12 (MSC4291) the create event carries no room_id: the room ID is the
        # create event's ID with the sigil swapped.
        if self.room_version.room_id_from_create_event and self.type == "m.room.create":
            return "!" + self.event_id[1:]
        raise KeyError("room_id")

    @property
    def depth(self) -> int:
        d = self._data.get("depth", 0)
        return d if isinstance(d, int) else 0

    @property
    def origin_server_ts(self) -> int:
        ts = self._data.get("origin_server_ts", 0)
        return ts if isinstance(ts, int) else 0

    @property
    def origin(self) -> str:
        """The server that created the event (from the sender; `origin` is not reliable)."""
        return self.sender.split(":", 1)[1]

    @property
    def redacts(self) -> str | None:
        # Since room v11 (MSC2174) `redacts` lives in content; read both for robustness.
        if self.room_version.redacts_in_content:
            r = self.content.get("redacts")
            if isinstance(r, str):
                return r
        r = self._data.get("redacts")
        return r if isinstance(r, str) else None

    @property
    def membership(self) -> str | None:
        m = self.content.get("membership")
        return m if isinstance(m, str) else None

    @property
    def unsigned(self) -> JsonDict:
        u = self._data.get("unsigned")
        return u if isinstance(u, dict) else {}

    @property
    def prev_event_ids(self) -> list[str]:
        return _ids(self._data.get("prev_events"), self.room_version)

    @property
    def auth_event_ids(self) -> list[str]:
        return _ids(self._data.get("auth_events"), self.room_version)

    def __repr__(self) -> str:
        return f"<Event {self.event_id} {self._data.get('type')!r} {self._data.get('state_key')!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)


def _ids(value: Any, room_version: RoomVersion) -> list[str]:
    if not isinstance(value, list):
        return []
    if room_version.event_format is EventFormat.V1:
        # v1/v2: each entry is [event_id, {"sha256": ...}]
        return [
            v[0] for v in value if isinstance(v, list) and v and isinstance(v[0], str)
        ]
    return [v for v in value if isinstance(v, str)]
