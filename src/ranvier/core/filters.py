"""Event filters (pure): parse/validate the filter JSON and match events against it.

Spec: Client-Server API > Filtering (`POST /user/{userId}/filter` request body:
`Filter`, `RoomFilter`, `RoomEventFilter`, `EventFilter`) and Appendices > Dot-separated
property paths (`event_fields`).

Matching rules (Filtering > API endpoints):
* `types`/`senders`/`rooms` absent means "all"; `not_*` always wins over the allow list.
* A `*` in `types`/`not_types` matches any sequence of characters.
* `rooms`/`not_rooms` on the `RoomFilter` are applied before the nested filters.

Parsing never raises anything but `FilterError`, which the API maps to 400 M_BAD_JSON
(as Synapse does for filters that fail its schema).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ranvier.core.events.event import Event

JsonDict = dict[str, Any]

# Sync timelines default to this many events (Synapse's default) and are capped so a
# client cannot make one initial sync read millions of events.
DEFAULT_TIMELINE_LIMIT: Final = 10
MAX_TIMELINE_LIMIT: Final = 100
MAX_FILTER_LIST_LENGTH: Final = 10_000


class FilterError(ValueError):
    """The filter JSON does not follow the spec's schema."""


@functools.lru_cache(maxsize=1024)
def _type_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(
        ".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL
    )


def _type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if "*" in p:
            if _type_pattern(p).fullmatch(event_type):
                return True
        elif p == event_type:
            return True
    return False


@dataclass(frozen=True, slots=True)
class EventFilter:
    """`EventFilter`: types and senders (presence, account data, and the base of rooms')."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: frozenset[str] | None = None
    not_senders: frozenset[str] = frozenset()

    def matches(self, event_type: str, sender: str | None = None) -> bool:
        if self.not_types and _type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not _type_matches(event_type, self.types):
            return False
        if sender is not None:
            if sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        return True

    def allows_everything(self) -> bool:
        return (
            self.types is None
            and not self.not_types
            and self.senders is None
            and not self.not_senders
        )

    def excludes_everything(self) -> bool:
        """`types: []` is the spec's way of asking for nothing at all."""
        return self.types == () or self.senders == frozenset()


@dataclass(frozen=True, slots=True)
class RoomEventFilter:
    """`RoomEventFilter`: an `EventFilter` plus rooms, URLs and lazy-loading flags."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: frozenset[str] | None = None
    not_senders: frozenset[str] = frozenset()
    rooms: frozenset[str] | None = None
    not_rooms: frozenset[str] = frozenset()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    @property
    def base(self) -> EventFilter:
        return EventFilter(
            self.limit, self.types, self.not_types, self.senders, self.not_senders
        )

    def includes_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches_fields(
        self,
        event_type: str,
        sender: str | None,
        room_id: str | None = None,
        content: Mapping[str, Any] | None = None,
    ) -> bool:
        if room_id is not None and not self.includes_room(room_id):
            return False
        if self.not_types and _type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not _type_matches(event_type, self.types):
            return False
        if sender is not None:
            if sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        if self.contains_url is not None:
            has_url = content is not None and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    def matches(self, event: Event | Mapping[str, Any]) -> bool:
        """Match an `Event`, or a PDU- or client-format event dict."""
        data = event.data if isinstance(event, Event) else event
        content = data.get("content")
        return self.matches_fields(
            str(data.get("type", "")),
            _str_or_none(data.get("sender")),
            _str_or_none(data.get("room_id")),
            content if isinstance(content, dict) else None,
        )

    def excludes_everything(self) -> bool:
        return (
            self.types == () or self.senders == frozenset() or self.rooms == frozenset()
        )


@dataclass(frozen=True, slots=True)
class RoomFilter:
    rooms: frozenset[str] | None = None
    not_rooms: frozenset[str] = frozenset()
    include_leave: bool = False
    timeline: RoomEventFilter = field(default_factory=RoomEventFilter)
    state: RoomEventFilter = field(default_factory=RoomEventFilter)
    ephemeral: RoomEventFilter = field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = field(default_factory=RoomEventFilter)

    def includes_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        limit = self.timeline.limit
        if limit is None:
            return DEFAULT_TIMELINE_LIMIT
        return max(0, min(limit, MAX_TIMELINE_LIMIT))


@dataclass(frozen=True, slots=True)
class Filter:
    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)


DEFAULT_FILTER: Final = Filter()


# -- parsing -------------------------------------------------------------------------------


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _obj(raw: JsonDict, key: str) -> JsonDict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FilterError(f"'{key}' must be an object")
    return value


def _str_list(raw: JsonDict, key: str, prefix: str = "") -> list[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_FILTER_LIST_LENGTH:
        raise FilterError(f"'{key}' must be an array of strings")
    for item in value:
        if not isinstance(item, str):
            raise FilterError(f"'{key}' must be an array of strings")
        # Entries become SQL parameters, and PostgreSQL text cannot hold U+0000.
        if "\x00" in item:
            raise FilterError(f"entries of '{key}' must not contain U+0000")
        if prefix and not item.startswith(prefix):
            raise FilterError(f"entries of '{key}' must start with '{prefix}'")
    return value


def _bool(raw: JsonDict, key: str, default: bool = False) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FilterError(f"'{key}' must be a boolean")
    return value


def _optional_bool(raw: JsonDict, key: str) -> bool | None:
    if raw.get(key) is None:
        return None
    return _bool(raw, key)


def _limit(raw: JsonDict) -> int | None:
    value = raw.get("limit")
    if value is None:
        return None
    # Synapse accepts numbers here; a float limit is truncated rather than refused.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FilterError("'limit' must be an integer")
    if value < 0 or value != value:
        raise FilterError("'limit' must not be negative")
    return int(min(value, 2**31))


def _frozen(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def parse_event_filter(raw: JsonDict) -> EventFilter:
    types = _str_list(raw, "types")
    return EventFilter(
        limit=_limit(raw),
        types=None if types is None else tuple(types),
        not_types=tuple(_str_list(raw, "not_types") or ()),
        senders=_frozen(_str_list(raw, "senders", "@")),
        not_senders=frozenset(_str_list(raw, "not_senders", "@") or ()),
    )


def parse_room_event_filter(raw: JsonDict) -> RoomEventFilter:
    """Validate and parse a `RoomEventFilter` (also `/messages`' `filter`)."""
    base = parse_event_filter(raw)
    return RoomEventFilter(
        limit=base.limit,
        types=base.types,
        not_types=base.not_types,
        senders=base.senders,
        not_senders=base.not_senders,
        rooms=_frozen(_str_list(raw, "rooms", "!")),
        not_rooms=frozenset(_str_list(raw, "not_rooms", "!") or ()),
        contains_url=_optional_bool(raw, "contains_url"),
        lazy_load_members=_bool(raw, "lazy_load_members"),
        include_redundant_members=_bool(raw, "include_redundant_members"),
        unread_thread_notifications=_bool(raw, "unread_thread_notifications"),
    )


def parse_room_filter(raw: JsonDict) -> RoomFilter:
    return RoomFilter(
        rooms=_frozen(_str_list(raw, "rooms", "!")),
        not_rooms=frozenset(_str_list(raw, "not_rooms", "!") or ()),
        include_leave=_bool(raw, "include_leave"),
        timeline=parse_room_event_filter(_obj(raw, "timeline")),
        state=parse_room_event_filter(_obj(raw, "state")),
        ephemeral=parse_room_event_filter(_obj(raw, "ephemeral")),
        account_data=parse_room_event_filter(_obj(raw, "account_data")),
    )


def parse_filter(raw: Any) -> Filter:
    """Validate and parse a `Filter` JSON object; raises `FilterError`."""
    if not isinstance(raw, dict):
        raise FilterError("a filter must be a JSON object")
    event_format = raw.get("event_format", "client")
    if event_format not in ("client", "federation"):
        raise FilterError("'event_format' must be 'client' or 'federation'")
    fields = _str_list(raw, "event_fields")
    if fields is not None:
        for f in fields:
            if (
                not f
                or f.startswith(".")
                or (f.endswith(".") and not f.endswith("\\."))
            ):
                raise FilterError(f"invalid event field path {f!r}")
    return Filter(
        event_fields=None if fields is None else tuple(fields),
        event_format=event_format,
        presence=parse_event_filter(_obj(raw, "presence")),
        account_data=parse_event_filter(_obj(raw, "account_data")),
        room=parse_room_filter(_obj(raw, "room")),
    )


# -- event_fields --------------------------------------------------------------------------


def split_field_path(path: str) -> list[str]:
    """Split a dot-separated property path; `\\.` is a literal dot, `\\\\` a backslash."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in path:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _copy_path(src: Mapping[str, Any], dst: JsonDict, path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if head not in src:
        return
    value = src[head]
    if not rest:
        dst[head] = value
        return
    if isinstance(value, dict):
        sub = dst.setdefault(head, {})
        if isinstance(sub, dict):
            _copy_path(value, sub, rest)


def only_fields(event: Mapping[str, Any], fields: tuple[str, ...]) -> JsonDict:
    """The subset of `event` named by `event_fields` (Filter.event_fields)."""
    out: JsonDict = {}
    for f in fields:
        _copy_path(event, out, split_field_path(f))
    return out
