"""The state events `POST /createRoom` implies, in the spec's order (pure).

Spec: C-S API > Rooms > Creation. After the create event and the creator's join:

3. the default `m.room.power_levels`, updated with `power_level_content_override` (a
   power-levels event in `initial_state` replaces it and is sent at step 6 instead);
4. `m.room.canonical_alias` if `room_alias_name` was given;
5. the preset's join rules, history visibility and guest access;
6. `initial_state`, in order (it takes precedence over the preset);
7. `m.room.name` and `m.room.topic` from `name` / `topic` (these win over initial_state);
8. the invites (built by the service: they carry the invitee's profile).

Since room v12 (MSC4289) creators are not listed in the power levels; `trusted_private_chat`
invitees become `additional_creators` there, and get the creator's level before v12.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.core.room_versions import RoomVersion

JsonDict = dict[str, Any]
StateKey = tuple[str, str]

__all__ = [
    "Preset",
    "RoomStatePlan",
    "StateEventSpec",
    "build_create_content",
    "plan_initial_state",
]

CREATOR_LEVEL = 100


class Preset(enum.Enum):
    PRIVATE_CHAT = "private_chat"
    TRUSTED_PRIVATE_CHAT = "trusted_private_chat"
    PUBLIC_CHAT = "public_chat"


@dataclass(frozen=True, slots=True)
class StateEventSpec:
    type: str
    state_key: str
    content: JsonDict

    @property
    def key(self) -> StateKey:
        return (self.type, self.state_key)


@dataclass(frozen=True, slots=True)
class RoomStatePlan:
    """Steps 3-7, ready to be sent in order after the creator's join."""

    events: tuple[StateEventSpec, ...]


def build_create_content(
    *,
    room_version: RoomVersion,
    creator: str,
    preset: Preset,
    invitees: Sequence[str],
    creation_content: Mapping[str, Any] | None,
) -> JsonDict:
    """The `m.room.create` content: `creation_content` plus what the server sets."""
    content: JsonDict = dict(creation_content or {})
    content["room_version"] = room_version.identifier
    if room_version.implicit_room_creator:
        # v11+ (MSC2175): the sender is the creator; `creator` is not sent.
        content.pop("creator", None)
    else:
        content["creator"] = creator
    if room_version.privileged_creators and preset is Preset.TRUSTED_PRIVATE_CHAT:
        extra = content.get("additional_creators")
        creators = list(extra) if isinstance(extra, list) else []
        creators.extend(u for u in invitees if u not in creators and u != creator)
        if creators:
            content["additional_creators"] = creators
    return content


def _default_power_levels(
    room_version: RoomVersion, creator: str, preset: Preset, invitees: Sequence[str]
) -> JsonDict:
    users: dict[str, int] = {}
    if not room_version.privileged_creators:
        users[creator] = CREATOR_LEVEL
        if preset is Preset.TRUSTED_PRIVATE_CHAT:
            users.update(dict.fromkeys(invitees, CREATOR_LEVEL))
    # Since v12 the tombstone level must be above state_default and out of reach of
    # ordinary admins (spec step 3): creators, with infinite power, can still upgrade.
    tombstone = 150 if room_version.privileged_creators else 100
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": tombstone,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        # As Synapse's presets: members of private chats may invite (their preset
        # overrides `invite` to 0), public rooms keep moderators' 50.
        "invite": 50 if preset is Preset.PUBLIC_CHAT else 0,
        "historical": 100,
    }


def _preset_events(preset: Preset) -> list[StateEventSpec]:
    public = preset is Preset.PUBLIC_CHAT
    events = [
        StateEventSpec(
            "m.room.join_rules", "", {"join_rule": "public" if public else "invite"}
        ),
        StateEventSpec(
            "m.room.history_visibility", "", {"history_visibility": "shared"}
        ),
    ]
    if not public:
        events.append(
            StateEventSpec("m.room.guest_access", "", {"guest_access": "can_join"})
        )
    return events


def plan_initial_state(
    *,
    room_version: RoomVersion,
    creator: str,
    preset: Preset,
    invitees: Sequence[str],
    canonical_alias: str | None,
    name: str | None,
    topic: str | None,
    initial_state: Sequence[StateEventSpec],
    power_level_content_override: Mapping[str, Any] | None,
) -> RoomStatePlan:
    """Steps 3-7 of room creation (see the module docstring)."""
    # Later entries of initial_state win over earlier ones with the same key.
    requested: dict[StateKey, StateEventSpec] = {}
    for spec in initial_state:
        requested.pop(spec.key, None)
        requested[spec.key] = spec
    implied: list[StateEventSpec] = []
    if name is not None:
        implied.append(StateEventSpec("m.room.name", "", {"name": name}))
    if topic is not None:
        implied.append(
            StateEventSpec(
                "m.room.topic",
                "",
                # Spec v1.15 (MSC3765): `m.topic` is an object holding `m.text`, the
                # plain `topic` stays for older clients.
                {
                    "topic": topic,
                    "m.topic": {"m.text": [{"body": topic, "mimetype": "text/plain"}]},
                },
            )
        )
    for spec in implied:
        requested.pop(spec.key, None)

    events: list[StateEventSpec] = []
    if ("m.room.power_levels", "") not in requested:
        pl = _default_power_levels(room_version, creator, preset, invitees)
        pl.update(power_level_content_override or {})
        events.append(StateEventSpec("m.room.power_levels", "", pl))
    if canonical_alias is not None and ("m.room.canonical_alias", "") not in requested:
        events.append(
            StateEventSpec("m.room.canonical_alias", "", {"alias": canonical_alias})
        )
    events.extend(s for s in _preset_events(preset) if s.key not in requested)
    events.extend(requested.values())
    events.extend(implied)
    return RoomStatePlan(tuple(events))
