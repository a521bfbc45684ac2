"""Shape checks for the content of state events a LOCAL client sends (pure, table-driven).

Spec: C-S API > Room Events (m.room.create, join_rules, history_visibility, guest_access,
power_levels, name, topic, avatar, canonical_alias, member, encryption, server_acl,
pinned_events, tombstone). The auth rules read only a few of these keys and ignore
malformed values, so a client could otherwise persist, say, `{"join_rule": 5}` or
`{"topic": 5}`: every other client then has to cope with it, and some crash. Like
Synapse's event validator this refuses such content with 400 `M_BAD_JSON` when a client
sends it (`PUT /state`, `createRoom`'s `initial_state`, `power_level_content_override`
and `creation_content`).

Federated events are never checked here: their signatures and the auth rules are what
counts, and refusing them would split the room. Required keys are the ones Synapse
requires too (`name` and `topic` are cleared with an empty string, not `{}`); every
listed optional key must have its type when present. Unknown keys pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["StateContentError", "check_state_content"]


class StateContentError(ValueError):
    """The content cannot be sent as this state event; the message says why."""


# --- value checks: each returns what was expected, or None when the value is fine --------

Check = Callable[[Any], str | None]

_USER_ID_RE: Final = re.compile(r"@[^:]+:.+")
_ROOM_ID_RE: Final = re.compile(r"![^\s]+")
_EVENT_ID_RE: Final = re.compile(r"\$[^\s]+")


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "a boolean"


def _int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else "an integer"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object"


def _nullable(check: Check) -> Check:
    def nullable(value: Any) -> str | None:
        if value is None:
            return None
        problem = check(value)
        return None if problem is None else f"{problem} or null"

    return nullable


def _matching(pattern: re.Pattern[str], what: str) -> Check:
    def matching(value: Any) -> str | None:
        ok = isinstance(value, str) and pattern.fullmatch(value) is not None
        return None if ok else what

    return matching


def _one_of(*choices: str) -> Check:
    expected = "one of " + ", ".join(repr(c) for c in choices)

    def one_of(value: Any) -> str | None:
        return None if value in choices else expected

    return one_of


def _list_of(item: Check, what: str) -> Check:
    def list_of(value: Any) -> str | None:
        ok = isinstance(value, list) and all(item(v) is None for v in value)
        return None if ok else f"an array of {what}"

    return list_of


def _map_of(key: Check, value_check: Check, what: str) -> Check:
    def map_of(value: Any) -> str | None:
        ok = isinstance(value, dict) and all(
            key(k) is None and value_check(v) is None for k, v in value.items()
        )
        return None if ok else what

    return map_of


def _objects(fields: Mapping[str, Check], what: str) -> Check:
    """An array of objects whose listed keys have these types when present."""

    def objects(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"an array of {what}"
        for item in value:
            if not isinstance(item, dict) or any(
                k in item and check(item[k]) is not None for k, check in fields.items()
            ):
                return f"an array of {what}"
        return None

    return objects


_user_id = _matching(_USER_ID_RE, "a user ID")
_room_id = _matching(_ROOM_ID_RE, "a room ID")
_event_id = _matching(_EVENT_ID_RE, "an event ID")


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    check: Check
    required: bool = False


def _req(check: Check) -> Field:
    return Field(check, required=True)


def _opt(check: Check) -> Field:
    return Field(check)


JOIN_RULES: Final = (
    "public", "knock", "invite", "private", "restricted", "knock_restricted"
)  # fmt: skip
NAMED_LEVELS: Final = (
    "ban", "events_default", "invite", "kick", "redact", "state_default",
    "users_default", "historical",
)  # fmt: skip
_LEVEL = _opt(_int)
_LEVELS_BY_NAME = _opt(
    _map_of(_string, _int, "an object mapping names to integer power levels")
)

STATE_CONTENT_FIELDS: Final[Mapping[str, Mapping[str, Field]]] = {
    "m.room.create": {
        "room_version": _opt(_string),
        "creator": _opt(_user_id),
        "m.federate": _opt(_bool),
        "type": _opt(_string),
        "predecessor": _opt(_object),
        "additional_creators": _opt(_list_of(_user_id, "user IDs")),
    },
    "m.room.join_rules": {
        "join_rule": _req(_one_of(*JOIN_RULES)),
        "allow": _opt(
            _objects({"type": _string, "room_id": _room_id}, "allow conditions")
        ),
    },
    "m.room.history_visibility": {
        "history_visibility": _req(
            _one_of("invited", "joined", "shared", "world_readable")
        ),
    },
    "m.room.guest_access": {
        "guest_access": _req(_one_of("can_join", "forbidden")),
    },
    "m.room.power_levels": {
        **dict.fromkeys(NAMED_LEVELS, _LEVEL),
        "events": _LEVELS_BY_NAME,
        "notifications": _LEVELS_BY_NAME,
        "users": _opt(
            _map_of(_user_id, _int, "an object mapping user IDs to integer levels")
        ),
    },
    "m.room.name": {"name": _req(_string)},
    "m.room.topic": {
        "topic": _req(_string),
        "m.topic": _opt(_object),
    },
    "m.room.avatar": {"url": _opt(_string), "info": _opt(_object)},
    # Only the types here: the alias service checks the syntax (400 M_INVALID_PARAM)
    # and that each alias exists and points at this room (M_BAD_ALIAS), as Synapse.
    "m.room.canonical_alias": {
        "alias": _opt(_nullable(_string)),
        "alt_aliases": _opt(_list_of(_string, "strings")),
    },
    "m.room.member": {
        "membership": _req(_one_of("invite", "join", "knock", "leave", "ban")),
        "displayname": _opt(_nullable(_string)),
        "avatar_url": _opt(_nullable(_string)),
        "is_direct": _opt(_bool),
        "reason": _opt(_string),
        "join_authorised_via_users_server": _opt(_user_id),
    },
    "m.room.encryption": {
        "algorithm": _req(_string),
        "rotation_period_ms": _opt(_int),
        "rotation_period_msgs": _opt(_int),
    },
    "m.room.server_acl": {
        "allow": _opt(_list_of(_string, "strings")),
        "deny": _opt(_list_of(_string, "strings")),
        "allow_ip_literals": _opt(_bool),
    },
    "m.room.pinned_events": {"pinned": _req(_list_of(_event_id, "event IDs"))},
    "m.room.tombstone": {
        "body": _opt(_string),
        "replacement_room": _req(_room_id),
    },
}

# The `m.text` of spec v1.15's `m.topic` (MSC3765): text in one or more formats.
_TEXT_FORMATS: Final = _objects({"body": _string, "mimetype": _string}, "text formats")


def _check_extra(event_type: str, content: Mapping[str, Any]) -> str | None:
    """Nested rules the table cannot express."""
    if event_type == "m.room.topic" and isinstance(content.get("m.topic"), dict):
        text = content["m.topic"].get("m.text")
        if text is not None and _TEXT_FORMATS(text) is not None:
            return "'m.topic.m.text' must be an array of text formats"
        if isinstance(text, list) and any("body" not in t for t in text):
            return "'m.topic.m.text' entries need a 'body'"
    if event_type == "m.room.create" and isinstance(content.get("predecessor"), dict):
        predecessor = content["predecessor"]
        if _room_id(predecessor.get("room_id")) is not None:
            return "'predecessor.room_id' must be a room ID"
        if "event_id" in predecessor and _event_id(predecessor["event_id"]):
            return "'predecessor.event_id' must be an event ID"
    return None


def check_state_content(
    event_type: str, content: Mapping[str, Any], *, partial: bool = False
) -> None:
    """Raise `StateContentError` unless `content` fits `event_type`'s schema.

    `partial` skips required keys: `power_level_content_override` and `creation_content`
    are merged into content the server completes.
    """
    fields = STATE_CONTENT_FIELDS.get(event_type)
    if fields is None:
        return
    for key, rule in fields.items():
        if key not in content:
            if rule.required and not partial:
                raise StateContentError(f"{event_type}: '{key}' is required")
            continue
        expected = rule.check(content[key])
        if expected is not None:
            raise StateContentError(f"{event_type}: '{key}' must be {expected}")
    problem = _check_extra(event_type, content)
    if problem is not None:
        raise StateContentError(f"{event_type}: {problem}")
