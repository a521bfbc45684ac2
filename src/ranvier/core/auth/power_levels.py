"""Authorization rules for `m.room.power_levels` events (v11 rule 9, v12 rule 10).

Step numbers are those of room v11. Before v10 values may be strings holding integers
(and before v6 floats), the v10 integer-only checks (9.1, 9.2) do not exist, and before v6
the `notifications` property is not checked (MSC2209).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ranvier.core.auth.errors import AuthError
from ranvier.core.auth.levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_creators,
    get_user_power_level,
)
from ranvier.core.auth.validation import (
    is_user_id_like,
    parse_power_level,
    read_power_level,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion

_NAMED_FIELDS: Final = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)


def check_power_levels_event(
    event: Event, auth_state: Mapping[StateKey, Event]
) -> None:
    """v11 rule 9: allow or reject a power-levels event (raises `AuthError`)."""
    rules = event.room_version
    content = event.content
    _validate_named_fields(content, rules)
    _validate_maps(content, rules)
    new_users = _validate_users(content, rules)
    if rules.privileged_creators:
        # v12 rule 10.4 (MSC4289): users must not contain any of the room's creators.
        creators = get_creators(auth_state[CREATE_KEY])
        listed = creators.intersection(new_users)
        if listed:
            raise AuthError(f"creators {sorted(listed)} must not be in users")
    # 9.4: if there is no previous m.room.power_levels event in the room, allow.
    current = auth_state.get(POWER_LEVELS_KEY)
    if current is None:
        return
    sender_level = get_user_power_level(event.sender, auth_state)
    old = current.content
    _check_named_changes(old, content, sender_level)
    map_names = (
        ["events", "notifications"]
        if rules.limit_notifications_power_levels
        else ["events"]
    )
    for name in map_names:
        _check_map_changes(
            name, _as_map(old.get(name)), _as_map(content.get(name)), sender_level
        )
    _check_user_changes(
        event.sender, _as_map(old.get("users")), new_users, sender_level
    )


def _validate_named_fields(content: Mapping[str, Any], rules: RoomVersion) -> None:
    # 9.1 (v10+): users_default, events_default, state_default, ban, redact, kick and
    # invite must be integers when present. Before v10 they must still be readable as
    # integers (stringy / floaty power levels), else no level can be derived from them.
    for name in _NAMED_FIELDS:
        if name in content and parse_power_level(content[name], rules) is None:
            raise AuthError(
                f"power level {name!r} is not an integer: {content[name]!r}"
            )


def _validate_maps(content: Mapping[str, Any], rules: RoomVersion) -> None:
    # 9.2 (v10+): events and notifications, when present, must be objects whose values
    # are integers. Before v10 the same, with stringy values; notifications is not a
    # power-levels property the rules consider before v6.
    names = ["events"]
    if rules.limit_notifications_power_levels:
        names.append("notifications")
    for name in names:
        if name not in content:
            continue
        value = content[name]
        if not isinstance(value, Mapping) or any(
            parse_power_level(v, rules) is None for v in value.values()
        ):
            raise AuthError(f"power levels {name!r} must map to integers")


def _validate_users(content: Mapping[str, Any], rules: RoomVersion) -> dict[str, int]:
    # 9.3: if users is not an object with keys that are valid user IDs and values that
    # are integers (or, before v10, strings that are integers), reject.
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError("power levels 'users' is not an object")
    parsed: dict[str, int] = {}
    for user_id, raw in users.items():
        if not is_user_id_like(user_id):
            raise AuthError(f"power levels 'users' key {user_id!r} is not a user ID")
        level = parse_power_level(raw, rules)
        if level is None:
            raise AuthError(f"power level of {user_id} is not an integer: {raw!r}")
        parsed[user_id] = level
    return parsed


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _check_named_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], sender_level: int | float
) -> None:
    # 9.5: for each of users_default .. invite that was added, changed or removed:
    # 9.5.1 reject if the current value is higher than the sender's level;
    # 9.5.2 reject if the new value is higher than the sender's level.
    for name in _NAMED_FIELDS:
        old_level = read_power_level(old[name]) if name in old else None
        new_level = read_power_level(new[name]) if name in new else None
        if old_level == new_level:
            continue
        if old_level is not None and old_level > sender_level:
            raise AuthError(f"cannot change {name!r} from {old_level}, above own level")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"cannot set {name!r} to {new_level}, above own level")


def _check_map_changes(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any], sender_level: int | float
) -> None:
    # 9.6: for each entry changed in or removed from events / notifications (v6+): reject
    # if the current value is greater than the sender's level.
    # 9.7: for each entry added to or changed in them: reject if the new value is greater
    # than the sender's level.
    for key in old.keys() | new.keys():
        old_raw, new_raw = old.get(key), new.get(key)
        if old_raw == new_raw and key in old and key in new:
            continue
        old_level = read_power_level(old_raw) if key in old else None
        new_level = read_power_level(new_raw) if key in new else None
        if old_level == new_level:
            continue
        if old_level is not None and old_level > sender_level:
            raise AuthError(
                f"cannot change {name}[{key!r}] from {old_level}, above own level"
            )
        if new_level is not None and new_level > sender_level:
            raise AuthError(
                f"cannot set {name}[{key!r}] to {new_level}, above own level"
            )


def _check_user_changes(
    sender: str,
    old: Mapping[str, Any],
    new: Mapping[str, int],
    sender_level: int | float,
) -> None:
    # 9.8: for each users entry changed or removed, other than the sender's own: reject
    # if the current value is greater than or equal to the sender's level.
    # 9.9: for each users entry added or changed: reject if the new value is greater
    # than the sender's level.
    for user_id in old.keys() | new.keys():
        old_level = read_power_level(old[user_id]) if user_id in old else None
        new_level = new.get(user_id)
        if old_level == new_level:
            continue
        if user_id != sender and old_level is not None and old_level >= sender_level:
            raise AuthError(
                f"cannot change the level of {user_id}, not below own level"
            )
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"cannot raise {user_id} to {new_level}, above own level")
