"""Power levels as the authorization rules read them.

Defaults come from the `m.room.power_levels` schema: `ban`, `kick`, `redact` and
`state_default` are 50, `invite`, `events_default` and `users_default` are 0, both when
the key is missing and when the room has no power-levels event. Without a power-levels
event the room creator has level 100 and everyone else 0. Since room v12 (MSC4289) the
creators (create event sender plus `additional_creators`) have infinite power.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from ranvier.core.auth.validation import read_power_level
from ranvier.core.events.event import Event, StateKey

CREATE_KEY: Final[StateKey] = ("m.room.create", "")
POWER_LEVELS_KEY: Final[StateKey] = ("m.room.power_levels", "")
JOIN_RULES_KEY: Final[StateKey] = ("m.room.join_rules", "")

CREATOR_LEVEL_WITHOUT_POWER_LEVELS: Final = 100
INFINITE_POWER: Final = float("inf")

NamedLevel = Literal["ban", "kick", "redact", "invite"]

_NAMED_DEFAULTS: Final[Mapping[str, int]] = {
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}


def get_creators(create_event: Event) -> frozenset[str]:
    """The room's creators.

    Before v11 the creator is `content.creator`; since v11 (MSC2175) it is the sender;
    since v12 (MSC4289) `content.additional_creators` are creators too.
    """
    rules = create_event.room_version
    if rules.implicit_room_creator:
        creators = {create_event.sender}
    else:
        creator = create_event.content.get("creator")
        creators = {creator} if isinstance(creator, str) else set()
    if rules.privileged_creators:
        extra = create_event.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
    return frozenset(creators)


def get_original_creator(create_event: Event) -> str | None:
    """The single creator of rule "join 1": `creator` before v11, the sender since."""
    if create_event.room_version.implicit_room_creator:
        return create_event.sender
    creator = create_event.content.get("creator")
    return creator if isinstance(creator, str) else None


def get_power_levels_content(auth_state: Mapping[StateKey, Event]) -> Mapping[str, Any]:
    """The content of the power-levels event in `auth_state`, or the spec's defaults.

    Without a power-levels event the creator has 100 (before v12) and every level has its
    default value. Values of a present event are returned as sent (they may be strings in
    rooms before v10); read them with `get_send_level` / `get_named_level`.
    """
    pl_event = auth_state.get(POWER_LEVELS_KEY)
    if pl_event is not None:
        return pl_event.content
    users: dict[str, int] = {}
    create_event = auth_state.get(CREATE_KEY)
    if create_event is not None and not create_event.room_version.privileged_creators:
        creator = get_original_creator(create_event)
        if creator is not None:
            users[creator] = CREATOR_LEVEL_WITHOUT_POWER_LEVELS
    return {
        "users": users,
        "users_default": 0,
        "events": {},
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    }


def get_user_power_level(
    user_id: str, auth_state: Mapping[StateKey, Event]
) -> int | float:
    """`user_id`'s power level; `float('inf')` for v12 creators.

    `auth_state` must hold the create event under ("m.room.create", "").
    """
    create_event = auth_state.get(CREATE_KEY)
    if create_event is None:
        return 0
    return get_user_power_level_from(
        user_id, create_event, auth_state.get(POWER_LEVELS_KEY)
    )


def get_user_power_level_from(
    user_id: str, create_event: Event, power_levels_event: Event | None
) -> int | float:
    """As `get_user_power_level`, from the two events that decide it."""
    rules = create_event.room_version
    if rules.privileged_creators and user_id in get_creators(create_event):
        # v12 (MSC4289): creators have infinite power and cannot be demoted.
        return INFINITE_POWER
    if power_levels_event is None:
        if get_original_creator(create_event) == user_id:
            return CREATOR_LEVEL_WITHOUT_POWER_LEVELS
        return 0
    content = power_levels_event.content
    users = content.get("users")
    if isinstance(users, Mapping) and user_id in users:
        level = read_power_level(users[user_id])
        if level is not None:
            return level
    default = read_power_level(content.get("users_default", 0))
    return default if default is not None else 0


def get_send_level(
    event_type: str, is_state: bool, power_levels_content: Mapping[str, Any]
) -> int:
    """The *required power level* to send an event of `event_type`."""
    events = power_levels_content.get("events")
    if isinstance(events, Mapping) and event_type in events:
        level = read_power_level(events[event_type])
        if level is not None:
            return level
    if is_state:
        level = read_power_level(power_levels_content.get("state_default", 50))
        return level if level is not None else 50
    level = read_power_level(power_levels_content.get("events_default", 0))
    return level if level is not None else 0


def get_named_level(power_levels_content: Mapping[str, Any], name: NamedLevel) -> int:
    """The *ban*, *kick*, *redact* or *invite* level."""
    default = _NAMED_DEFAULTS[name]
    level = read_power_level(power_levels_content.get(name, default))
    return level if level is not None else default
