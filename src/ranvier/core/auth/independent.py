"""Authorization rules that do not depend on room state.

These are checked once per event, against the event's own `auth_events`: the
`m.room.create` rules (v11 rule 1 / v12 rule 1), the room-ID rule of v12 (rule 2), the
shape of `auth_events` (v11 rule 2 / v12 rule 3) and the signature requirement of
restricted joins (v11 rule 4.2 / v12 rule 5.2; the signature itself is verified with the
other signatures, before auth).
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from ranvier.core.auth.errors import AuthError
from ranvier.core.auth.levels import CREATE_KEY
from ranvier.core.auth.selection import auth_events_selection
from ranvier.core.auth.validation import get_domain, is_valid_user_id
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS


def check_state_independent_auth_rules(
    event: Event,
    auth_events_by_id: Mapping[str, Event],
    create_event: Event | None,
    *,
    rejected: Container[str] = frozenset(),
) -> None:
    """Raise `AuthError` unless `event` passes the state-independent auth rules.

    `auth_events_by_id` must hold every event listed in `event`'s `auth_events` (more is
    fine). `create_event` is the room's create event: required since v12, where it is not
    in `auth_events` (the room ID names it); before v12 it may be None, and when given must
    be the create event cited in `auth_events`. `rejected` holds IDs of events rejected on
    receipt; citing one is not allowed.
    """
    if event.type == "m.room.create":
        check_create_event(event)
        return
    rules = event.room_version
    if rules.room_id_from_create_event:
        _check_room_id_names_create_event(event, create_event)
    cited = _check_auth_events_shape(event, auth_events_by_id, rejected)
    if not rules.room_id_from_create_event:
        # v11 rule 2.4: if there is no m.room.create event among the entries, reject.
        cited_create = cited.get(CREATE_KEY)
        if cited_create is None:
            raise AuthError("no m.room.create event in auth_events")
        if create_event is not None and create_event.event_id != cited_create:
            raise AuthError(
                f"auth_events cite create event {cited_create}, "
                f"not the room's {create_event.event_id}"
            )
    if rules.restricted_join_rule and event.type == "m.room.member":
        _check_authorising_server_signed(event)


def check_create_event(event: Event) -> None:
    """v11 rule 1 / v12 rule 1: the rules for `m.room.create` events."""
    rules = event.room_version
    # v11 rule 1.1: if it has any prev_events, reject.
    prev_events = event.get("prev_events")
    if prev_events:
        raise AuthError("m.room.create event has prev_events")
    if rules.room_id_from_create_event:
        # v12 rule 1.2: if the event has a room_id, reject (the room ID is its event ID).
        if "room_id" in event.data:
            raise AuthError("m.room.create event must not have a room_id")
    else:
        # v11 rule 1.2: if the domain of the room_id does not match the domain of the
        # sender, reject.
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or get_domain(room_id) != get_domain(
            event.sender
        ):
            raise AuthError("m.room.create room_id domain does not match the sender's")
    # v11 rule 1.3: if content.room_version is present and not a recognised version,
    # reject.
    content = event.content
    if "room_version" in content:
        version = content["room_version"]
        if not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS:
            raise AuthError(f"m.room.create has unknown room_version {version!r}")
    # v10 rule 1.4 (removed in v11 by MSC2175): if content has no creator, reject.
    if not rules.implicit_room_creator and "creator" not in content:
        raise AuthError("m.room.create content has no creator")
    # v12 rule 1.4 (MSC4289): additional_creators must be an array of valid user IDs.
    if rules.privileged_creators and "additional_creators" in content:
        extra = content["additional_creators"]
        if not isinstance(extra, list) or not all(is_valid_user_id(u) for u in extra):
            raise AuthError("additional_creators is not an array of valid user IDs")


def _check_room_id_names_create_event(event: Event, create_event: Event | None) -> None:
    # v12 rule 2 (MSC4291): if the event's room_id is not the event ID of an accepted
    # m.room.create event, with the sigil `!` instead of `$`, reject. Whether the create
    # event was accepted is the caller's knowledge: it must pass an accepted one.
    if create_event is None:
        raise AuthError("the room's m.room.create event is unknown")
    if create_event.type != "m.room.create" or create_event.state_key != "":
        raise AuthError(f"{create_event.event_id} is not an m.room.create event")
    room_id = event.get("room_id")
    if not isinstance(room_id, str) or room_id != "!" + create_event.event_id[1:]:
        raise AuthError(
            f"room_id {room_id!r} is not named after {create_event.event_id}"
        )


def _check_auth_events_shape(
    event: Event, auth_events_by_id: Mapping[str, Event], rejected: Container[str]
) -> dict[StateKey, str]:
    """v11 rule 2 / v12 rule 3: the auth events' keys, rejection state and rooms."""
    expected = auth_events_selection(event)
    room_id = event.room_id
    cited: dict[StateKey, str] = {}
    for auth_id in event.auth_event_ids:
        auth_event = auth_events_by_id.get(auth_id)
        if auth_event is None:
            raise AuthError(f"auth event {auth_id} is unknown")
        if not auth_event.is_state():
            raise AuthError(f"auth event {auth_id} is not a state event")
        key = auth_event.state_tuple
        # rule 2.1: duplicate entries for a given type and state_key pair, reject.
        if key in cited:
            raise AuthError(f"auth_events has two events for {key}")
        # rule 2.2: entries whose type and state_key are not from the auth events
        # selection, reject. Since v12 this includes the create event.
        if key not in expected:
            if key == CREATE_KEY:
                raise AuthError("auth_events must not include the m.room.create event")
            raise AuthError(f"auth event {auth_id} for {key} is not expected")
        # rule 2.3: entries which were themselves rejected, reject.
        if auth_id in rejected:
            raise AuthError(f"auth event {auth_id} was rejected")
        # rule 2.5: an auth event in another room, reject.
        if auth_event.room_id != room_id:
            raise AuthError(f"auth event {auth_id} is in another room")
        cited[key] = auth_id
    return cited


def _check_authorising_server_signed(event: Event) -> None:
    # v8 rule 4.2: if content has a join_authorised_via_users_server key, and the event is
    # not validly signed by that user's homeserver, reject. Signatures are verified before
    # auth; here we only require that this server's signature is among them.
    if "join_authorised_via_users_server" not in event.content:
        return
    authoriser = event.content["join_authorised_via_users_server"]
    if not is_valid_user_id(authoriser):
        raise AuthError("join_authorised_via_users_server is not a valid user ID")
    assert isinstance(authoriser, str)
    signatures = event.get("signatures")
    if not isinstance(signatures, Mapping) or get_domain(authoriser) not in signatures:
        raise AuthError(f"event is not signed by the server of {authoriser}")
