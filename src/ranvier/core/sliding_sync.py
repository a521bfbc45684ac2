"""Simplified sliding sync (MSC4186): the request model and its pure rules.

What clients send is the form matrix-rust-sdk (Element X) and matrix-js-sdk's
`SlidingSync` send, and Synapse serves: `ranges` (a list of inclusive `[start, end]`
pairs), `required_state` as `[[type, state_key], …]` with `*` wildcards, `$LAZY` (the
members of the timeline's senders) and `$ME` (the syncing user), and `is_invite`. The
later revision of the MSC renamed some of these (`range`, `is_invited`, a
`{include, exclude, lazy_members}` object for `required_state`, `pos`/`timeout` in the
body); both spellings are accepted so either generation of client works.

Combining room configs (MSC4186 "Combining room configs"): a room matched by several
lists and subscriptions gets the largest `timeline_limit` and the union of the
`required_state`s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ranvier.core.errors import bad_json, invalid_param

JsonDict = dict[str, Any]
StateKey = tuple[str, str]

WILDCARD: Final = "*"
STATE_KEY_ME: Final = "$ME"
STATE_KEY_LAZY: Final = "$LAZY"
MEMBER: Final = "m.room.member"

# The event types that move a room's `bump_stamp` (MSC4186 "bump_stamp"; the same set
# as Synapse's SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES, which Element X sorts by).
BUMP_EVENT_TYPES: Final = (
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
)

# Bounds on what one request may ask for (MSC4186: "Max lists: 100"); the timeline cap
# keeps one room from turning a sync into a history dump.
MAX_LISTS: Final = 100
MAX_TIMELINE_LIMIT: Final = 100
MAX_REQUIRED_STATE: Final = 200
MAX_SUBSCRIPTIONS: Final = 500
MAX_LIST_RANGE_END: Final = 100_000


# -- required_state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateQuery:
    """Which state of a room to read: everything, or every key of `types` plus `keys`."""

    full: bool = False
    types: frozenset[str] = frozenset()
    keys: frozenset[StateKey] = frozenset()

    def union(self, other: StateQuery) -> StateQuery:
        if self.full or other.full:
            return StateQuery(full=True)
        return StateQuery(False, self.types | other.types, self.keys | other.keys)

    def is_empty(self) -> bool:
        return not (self.full or self.types or self.keys)


@dataclass(frozen=True, slots=True)
class RequiredState:
    """Which state of a room to send. `pairs` holds the requested (type, state_key)
    entries, wildcards and `$ME` unresolved; `lazy` is `$LAZY` / `lazy_members`."""

    pairs: frozenset[StateKey] = frozenset()
    exclude: frozenset[StateKey] = frozenset()
    lazy: bool = False

    def matches(self, key: StateKey, user_id: str) -> bool:
        if any(_pair_matches(p, key, user_id) for p in self.exclude):
            return False
        return any(_pair_matches(p, key, user_id) for p in self.pairs)

    def combine(self, other: RequiredState) -> RequiredState:
        # An exclusion of one config must not hide what the other asked for, so only
        # exclusions both configs make survive the union.
        return RequiredState(
            self.pairs | other.pairs,
            self.exclude & other.exclude,
            self.lazy or other.lazy,
        )

    def state_query(self, user_id: str) -> StateQuery:
        """The state keys a store must read so `matches` can pick from them."""
        if any(t == WILDCARD for t, _ in self.pairs):
            return StateQuery(full=True)
        return StateQuery(
            types=frozenset(t for t, k in self.pairs if k == WILDCARD),
            keys=frozenset(
                (t, user_id if k == STATE_KEY_ME else k)
                for t, k in self.pairs
                if k != WILDCARD
            ),
        )

    def to_json(self) -> JsonDict:
        """The stored form. Shared between calls (configs repeat every request):
        callers must not modify it."""
        return _required_state_json(self)

    @classmethod
    def from_json(cls, raw: Any) -> RequiredState:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            _pairs_from_json(raw.get("pairs")),
            _pairs_from_json(raw.get("exclude")),
            bool(raw.get("lazy")),
        )


@functools.lru_cache(maxsize=1024)
def _required_state_json(spec: RequiredState) -> JsonDict:
    return {
        "pairs": sorted([list(p) for p in spec.pairs]),
        "exclude": sorted([list(p) for p in spec.exclude]),
        "lazy": spec.lazy,
    }


def _pairs_from_json(raw: Any) -> frozenset[StateKey]:
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(
        (str(p[0]), str(p[1])) for p in raw if isinstance(p, list) and len(p) == 2
    )


def _pair_matches(pair: StateKey, key: StateKey, user_id: str) -> bool:
    ptype, pkey = pair
    if ptype != WILDCARD and ptype != key[0]:
        return False
    if pkey == WILDCARD:
        return True
    if pkey == STATE_KEY_ME:
        return key[1] == user_id
    if pkey == STATE_KEY_LAZY:
        # `$LAZY` selects members by the timeline, not by matching (see `lazy`).
        return False
    return pkey == key[1]


def parse_required_state(raw: Any) -> RequiredState:
    """`[[type, state_key], …]` (what clients send) or the later
    `{"include": [{type?, state_key?}], "exclude": […], "lazy_members": bool}`."""
    if raw is None:
        return RequiredState()
    if isinstance(raw, dict):
        include = _parse_elements(raw.get("include"), "include")
        exclude = _parse_elements(raw.get("exclude"), "exclude")
        lazy = raw.get("lazy_members", False)
        if not isinstance(lazy, bool):
            raise bad_json("'required_state.lazy_members' must be a boolean")
        return RequiredState(frozenset(include), frozenset(exclude), lazy)
    if not isinstance(raw, list):
        raise bad_json("'required_state' must be an array")
    if len(raw) > MAX_REQUIRED_STATE:
        raise invalid_param("'required_state' has too many entries")
    pairs: set[StateKey] = set()
    lazy = False
    for entry in raw:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not all(isinstance(x, str) for x in entry)
        ):
            raise bad_json("'required_state' entries must be [type, state_key]")
        etype, skey = entry
        if skey == STATE_KEY_LAZY and etype == MEMBER:
            lazy = True
            continue
        pairs.add((etype, skey))
    return RequiredState(frozenset(pairs), frozenset(), lazy)


def _parse_elements(raw: Any, what: str) -> set[StateKey]:
    if raw is None:
        return set()
    if not isinstance(raw, list) or len(raw) > MAX_REQUIRED_STATE:
        raise bad_json(f"'required_state.{what}' must be an array (at most 200)")
    out: set[StateKey] = set()
    for element in raw:
        if not isinstance(element, dict):
            raise bad_json(f"'required_state.{what}' entries must be objects")
        etype = element.get("type", WILDCARD)
        skey = element.get("state_key", WILDCARD)
        if not isinstance(etype, str) or not isinstance(skey, str):
            raise bad_json("'type' and 'state_key' must be strings")
        out.add((etype, skey))
    return out


# -- room configs, lists, subscriptions --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomConfig:
    timeline_limit: int = 0
    required_state: RequiredState = field(default_factory=RequiredState)

    def combine(self, other: RoomConfig) -> RoomConfig:
        return RoomConfig(
            max(self.timeline_limit, other.timeline_limit),
            self.required_state.combine(other.required_state),
        )


@dataclass(frozen=True, slots=True)
class ListFilters:
    """MSC4186 `SlidingRoomFilter`. None: the filter is not set."""

    is_dm: bool | None = None
    is_invite: bool | None = None
    is_encrypted: bool | None = None
    spaces: tuple[str, ...] | None = None
    # None inside the tuples stands for "no room type" (a JSON null).
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListConfig:
    ranges: tuple[tuple[int, int], ...] | None
    config: RoomConfig
    filters: ListFilters = field(default_factory=ListFilters)


@dataclass(frozen=True, slots=True)
class ExtensionConfig:
    enabled: bool = False
    # None: every list / every subscribed room (MSC3959/3960/3961 default `["*"]`).
    lists: tuple[str, ...] | None = None
    rooms: tuple[str, ...] | None = None
    since: str | None = None
    # `threads` (MSC4360): at most this many thread updates; thread roots included.
    limit: int | None = None
    include_roots: bool = False


@dataclass(frozen=True, slots=True)
class SlidingSyncRequest:
    conn_id: str = ""
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    room_subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    unsubscribe_rooms: tuple[str, ...] = ()
    extensions: Mapping[str, ExtensionConfig] = field(default_factory=dict)

    def extension(self, name: str) -> ExtensionConfig:
        return self.extensions.get(name) or ExtensionConfig()


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """What the list filters and the ordering look at, for one room of the user."""

    room_id: str
    membership: str
    bump_stamp: int
    room_type: str | None = None
    encrypted: bool = False
    is_dm: bool = False
    tags: frozenset[str] = frozenset()


def room_matches(
    facts: RoomFacts, flt: ListFilters, space_children: frozenset[str] | None
) -> bool:
    """MSC4186 `SlidingRoomFilter`, every set filter must hold. `space_children`: the
    children of the filter's spaces (None when `spaces` is not set)."""
    if flt.is_dm is not None and facts.is_dm != flt.is_dm:
        return False
    if flt.is_invite is not None and (facts.membership == "invite") != flt.is_invite:
        return False
    if flt.is_encrypted is not None and facts.encrypted != flt.is_encrypted:
        return False
    if space_children is not None and facts.room_id not in space_children:
        return False
    if flt.room_types is not None and facts.room_type not in flt.room_types:
        return False
    if facts.room_type in flt.not_room_types:
        return False
    if facts.tags & set(flt.not_tags):
        return False
    return flt.tags is None or bool(facts.tags & set(flt.tags))


def sort_rooms(facts: Iterable[RoomFacts]) -> list[RoomFacts]:
    """Most recent activity first; the room ID breaks ties so pages are stable."""
    return sorted(facts, key=lambda f: (-f.bump_stamp, f.room_id))


def rooms_in_ranges(
    ordered: Sequence[str], ranges: tuple[tuple[int, int], ...] | None
) -> list[str]:
    """The rooms at the (inclusive) positions of `ranges`; all of them without ranges."""
    if ranges is None:
        return list(ordered)
    seen: set[int] = set()
    out: list[str] = []
    for start, end in ranges:
        for i in range(start, min(end, len(ordered) - 1) + 1):
            if i not in seen:
                seen.add(i)
                out.append(ordered[i])
    return out


# -- parsing the request body --------------------------------------------------------------


def parse_request(body: JsonDict) -> SlidingSyncRequest:
    conn_id = body.get("conn_id") or ""
    if not isinstance(conn_id, str) or len(conn_id) > 255:
        raise bad_json("'conn_id' must be a string (at most 255 characters)")
    lists_raw = _obj(body, "lists")
    if len(lists_raw) > MAX_LISTS:
        raise invalid_param("Too many lists")
    subs_raw = _obj(body, "room_subscriptions")
    if len(subs_raw) > MAX_SUBSCRIPTIONS:
        raise invalid_param("Too many room subscriptions")
    return SlidingSyncRequest(
        conn_id=conn_id,
        lists={k: _parse_list(k, v) for k, v in lists_raw.items()},
        room_subscriptions={
            room_id: _parse_room_config(sub, f"room_subscriptions.{room_id}")
            for room_id, sub in subs_raw.items()
        },
        unsubscribe_rooms=tuple(_str_list(body, "unsubscribe_rooms") or ()),
        extensions={
            name: _parse_extension(name, raw)
            for name, raw in _obj(body, "extensions").items()
        },
    )


def _obj(raw: JsonDict, key: str) -> JsonDict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_json(f"'{key}' must be an object")
    return value


def _str_list(raw: JsonDict, key: str) -> list[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise bad_json(f"'{key}' must be an array of strings")
    return value


def _opt_bool(raw: JsonDict, key: str) -> bool | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_json(f"'{key}' must be a boolean")
    return value


def _parse_room_config(raw: Any, where: str) -> RoomConfig:
    if not isinstance(raw, dict):
        raise bad_json(f"'{where}' must be an object")
    limit = raw.get("timeline_limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise bad_json(f"'{where}.timeline_limit' must be a non-negative integer")
    return RoomConfig(
        min(limit, MAX_TIMELINE_LIMIT), parse_required_state(raw.get("required_state"))
    )


def _parse_list(name: str, raw: Any) -> ListConfig:
    if not isinstance(raw, dict):
        raise bad_json(f"'lists.{name}' must be an object")
    return ListConfig(
        ranges=_parse_ranges(raw),
        config=_parse_room_config(raw, f"lists.{name}"),
        filters=_parse_filters(_obj(raw, "filters")),
    )


def _parse_ranges(raw: JsonDict) -> tuple[tuple[int, int], ...] | None:
    if raw.get("ranges") is not None:
        value = raw["ranges"]
    elif raw.get("range") is not None:
        value = [raw["range"]]
    else:
        return None
    if not isinstance(value, list):
        raise bad_json("'ranges' must be an array of [start, end] pairs")
    out: list[tuple[int, int]] = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
            or pair[0] < 0
            or pair[1] < pair[0]
        ):
            raise invalid_param(
                "Each range must be [start, end] with 0 <= start <= end"
            )
        out.append((pair[0], min(pair[1], MAX_LIST_RANGE_END)))
    return tuple(out)


def _room_type_list(raw: JsonDict, key: str) -> tuple[str | None, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        x is None or isinstance(x, str) for x in value
    ):
        raise bad_json(f"'{key}' must be an array of strings or nulls")
    return tuple(value)


def _parse_filters(raw: JsonDict) -> ListFilters:
    is_invite = _opt_bool(raw, "is_invite")
    if is_invite is None:
        is_invite = _opt_bool(raw, "is_invited")
    spaces = _str_list(raw, "spaces")
    tags = _str_list(raw, "tags")
    return ListFilters(
        is_dm=_opt_bool(raw, "is_dm"),
        is_invite=is_invite,
        is_encrypted=_opt_bool(raw, "is_encrypted"),
        spaces=None if spaces is None else tuple(spaces),
        room_types=_room_type_list(raw, "room_types"),
        not_room_types=_room_type_list(raw, "not_room_types") or (),
        tags=None if tags is None else tuple(tags),
        not_tags=tuple(_str_list(raw, "not_tags") or ()),
    )


def _parse_extension(name: str, raw: Any) -> ExtensionConfig:
    if not isinstance(raw, dict):
        raise bad_json(f"'extensions.{name}' must be an object")
    since = raw.get("since")
    if since is not None and not isinstance(since, str):
        raise bad_json(f"'extensions.{name}.since' must be a string")
    lists = _str_list(raw, "lists")
    rooms = _str_list(raw, "rooms")
    limit = raw.get("limit")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
    ):
        raise bad_json(f"'extensions.{name}.limit' must be a positive integer")
    return ExtensionConfig(
        enabled=bool(_opt_bool(raw, "enabled")),
        lists=None if lists is None or WILDCARD in lists else tuple(lists),
        rooms=None if rooms is None or WILDCARD in rooms else tuple(rooms),
        since=since,
        limit=limit,
        include_roots=bool(_opt_bool(raw, "include_roots")),
    )


def extension_rooms(
    ext: ExtensionConfig,
    list_rooms: Mapping[str, Sequence[str]],
    subscribed: Iterable[str],
) -> set[str]:
    """The rooms an extension covers (MSC3959 "lists"/"rooms" scoping): the rooms of
    the named lists (all lists by default) and the named subscribed rooms (all
    subscribed rooms by default). Rooms outside this request's lists and
    subscriptions are never covered."""
    subscribed = set(subscribed)
    out: set[str] = set()
    names = list_rooms.keys() if ext.lists is None else ext.lists
    for name in names:
        out.update(list_rooms.get(name, ()))
    out |= subscribed if ext.rooms is None else subscribed & set(ext.rooms)
    return out
