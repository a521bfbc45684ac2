"""Authorization rules that read room state (v11 rules 3-10, v12 rules 4-11).

`auth_state` is the state the event is checked against: its auth events when an event
arrives, the state before it, the current state for soft-failure, or the partial state of
the iterative auth checks in state resolution. It must hold the room's create event
under ("m.room.create", "") in every room version.
"""

from __future__ import annotations

from collections.abc import Mapping

from ranvier.core.auth.errors import AuthError
from ranvier.core.auth.levels import (
    CREATE_KEY,
    get_named_level,
    get_power_levels_content,
    get_send_level,
    get_user_power_level,
)
from ranvier.core.auth.membership import ThirdPartyInviteVerifier, check_membership
from ranvier.core.auth.power_levels import check_power_levels_event
from ranvier.core.auth.validation import get_domain
from ranvier.core.events.event import Event, StateKey


def check_state_dependent_auth_rules(
    event: Event,
    auth_state: Mapping[StateKey, Event],
    *,
    verify_third_party_invite: ThirdPartyInviteVerifier | None = None,
) -> None:
    """Raise `AuthError` unless `event` is allowed in `auth_state`.

    `verify_third_party_invite` checks the signatures of a third-party invite's `signed`
    block; without it such invites are rejected.
    """
    # Rule 1 (create): nothing here depends on state.
    if event.type == "m.room.create":
        return
    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("the room's m.room.create event is missing from the auth state")
    # v11 rule 3: if the create event's content has m.federate set to false and the
    # sender's domain differs from the create event sender's domain, reject.
    if create.content.get("m.federate", True) is False and get_domain(
        event.sender
    ) != get_domain(create.sender):
        raise AuthError("the room does not federate")
    rules = event.room_version
    if event.type == "m.room.aliases" and rules.special_case_aliases_auth:
        _check_aliases(event)
        return
    if event.type == "m.room.member":
        check_membership(event, auth_state, verify_third_party_invite)
        return
    _check_sender_may_send(event, auth_state)


def _check_aliases(event: Event) -> None:
    # v1-v5 rule 4 (removed in v6): m.room.aliases.
    # 4.1: if event has no state_key, reject.
    if event.state_key is None:
        raise AuthError("m.room.aliases event has no state_key")
    # 4.2: if sender's domain doesn't match state_key, reject.
    if event.state_key != get_domain(event.sender):
        raise AuthError("m.room.aliases state_key is not the sender's domain")
    # 4.3: otherwise, allow.


def _check_sender_may_send(event: Event, auth_state: Mapping[StateKey, Event]) -> None:
    # v11 rule 5: if the sender's current membership state is not join, reject.
    member = auth_state.get(("m.room.member", event.sender))
    if member is None or member.membership != "join":
        raise AuthError(f"{event.sender} is not joined to the room")
    pl_content = get_power_levels_content(auth_state)
    sender_level = get_user_power_level(event.sender, auth_state)
    # v11 rule 6: m.room.third_party_invite is allowed iff the sender's level is at least
    # the invite level.
    if event.type == "m.room.third_party_invite":
        if sender_level < get_named_level(pl_content, "invite"):
            raise AuthError(f"{event.sender} may not invite")
        return
    # v11 rule 7: if the event type's required power level is greater than the sender's
    # level, reject.
    required = get_send_level(event.type, event.is_state(), pl_content)
    if required > sender_level:
        raise AuthError(
            f"{event.sender} has power {sender_level}, {event.type} needs {required}"
        )
    # v11 rule 8: a state_key starting with @ that does not match the sender, reject.
    state_key = event.state_key
    if (
        state_key is not None
        and state_key.startswith("@")
        and state_key != event.sender
    ):
        raise AuthError("cannot set state keyed by another user's ID")
    # v11 rule 9: m.room.power_levels.
    if event.type == "m.room.power_levels":
        check_power_levels_event(event, auth_state)
        return
    if event.type == "m.room.redaction" and event.room_version.is_v1_event_format:
        _check_v1_redaction(event, sender_level, get_named_level(pl_content, "redact"))
    # v11 rule 10: otherwise, allow.


def _check_v1_redaction(
    event: Event, sender_level: int | float, redact_level: int
) -> None:
    # v1/v2 rule 11 (moved out of the auth rules in v3, where event IDs lost their
    # domain): m.room.redaction.
    # 11.1: if the sender's power level >= the redact level, allow.
    if sender_level >= redact_level:
        return
    # 11.2: if the domain of the redacted event's ID equals that of the redaction's ID,
    # allow.
    redacts = event.redacts
    if redacts is not None and get_domain(redacts) == get_domain(event.event_id):
        return
    # 11.3: otherwise, reject.
    raise AuthError(f"{event.sender} may not redact {redacts}")
