"""Which room state an event's authorization needs.

S-S API > Authentication > Auth events selection names the state a PDU's `auth_events`
must be chosen from; since room v12 (MSC4291) the create event is no longer among them
but is still needed (it is implied by the room ID).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.core.auth.levels import CREATE_KEY, JOIN_RULES_KEY, POWER_LEVELS_KEY
from ranvier.core.events.event import Event, StateKey


def auth_types_for_event(event: Event) -> set[StateKey]:
    """The state keys whose current events the auth rules read for `event`.

    Always includes the create event, in every room version: pass that state to
    `check_state_dependent_auth_rules`. The create event itself needs none.
    """
    if event.type == "m.room.create":
        return set()
    keys = auth_events_selection(event)
    keys.add(CREATE_KEY)
    return keys


def auth_events_selection(event: Event) -> set[StateKey]:
    """The keys allowed in the PDU's `auth_events` (the spec's auth events selection).

    As `auth_types_for_event`, except that since v12 the create event is not selected.
    """
    if event.type == "m.room.create":
        return set()
    keys: set[StateKey] = {POWER_LEVELS_KEY, ("m.room.member", event.sender)}
    if not event.room_version.room_id_from_create_event:
        keys.add(CREATE_KEY)
    if event.type != "m.room.member":
        return keys
    target = event.state_key
    if target is not None:
        keys.add(("m.room.member", target))
    membership = event.membership
    content = event.content
    if membership in ("join", "invite", "knock"):
        keys.add(JOIN_RULES_KEY)
    if membership == "invite":
        token = third_party_invite_token(content)
        if token is not None:
            keys.add(("m.room.third_party_invite", token))
    if membership == "join" and event.room_version.restricted_join_rule:
        authoriser = content.get("join_authorised_via_users_server")
        if isinstance(authoriser, str):
            keys.add(("m.room.member", authoriser))
    return keys


def third_party_invite_token(content: Mapping[str, Any]) -> str | None:
    """`content.third_party_invite.signed.token`, when it is a string."""
    tpi = content.get("third_party_invite")
    if not isinstance(tpi, Mapping):
        return None
    signed = tpi.get("signed")
    if not isinstance(signed, Mapping):
        return None
    token = signed.get("token")
    return token if isinstance(token, str) else None
