"""Auth rules: create events, auth_events shape, non-member events, across room versions."""

from __future__ import annotations

import re

import pytest

from ranvier.core.auth import (
    CREATE_KEY,
    AuthError,
    auth_events_selection,
    auth_types_for_event,
    check_create_event,
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.core.auth_builders import (
    ALICE,
    BOB,
    CHARLIE,
    REMOTE,
    Room,
    check,
    event_id_for,
    standard_room,
    versions,
)

V = KNOWN_ROOM_VERSIONS


# -- m.room.create (rule 1) -------------------------------------------------------------
@versions()
def test_create_event_is_allowed(rv: RoomVersion) -> None:
    room = Room(rv)
    check_create_event(room.create)
    check_state_independent_auth_rules(room.create, {}, None)
    check_state_dependent_auth_rules(room.create, {})


@versions()
def test_create_with_prev_events_rejected(rv: RoomVersion) -> None:
    room = Room(rv)
    bad = room.build("C2", "m.room.create", ALICE, {"creator": ALICE}, state_key="")
    bad.data["prev_events"] = [room.create.event_id]
    with pytest.raises(AuthError, match="prev_events"):
        check_create_event(bad)


@versions(lambda rv: not rv.room_id_from_create_event)
def test_create_room_id_domain_must_match_sender(rv: RoomVersion) -> None:
    room = Room(rv)
    bad = room.build(
        "C2",
        "m.room.create",
        ALICE,
        {"creator": ALICE},
        state_key="",
        extra={"room_id": "!room:elsewhere.org"},
    )
    with pytest.raises(AuthError, match="domain"):
        check_create_event(bad)


def test_v12_create_must_not_have_room_id() -> None:
    room = Room(V["12"])
    bad = room.build(
        "C2", "m.room.create", ALICE, {}, state_key="", extra={"room_id": "!x"}
    )
    with pytest.raises(AuthError, match="must not have a room_id"):
        check_create_event(bad)


@versions()
def test_create_unknown_room_version_rejected(rv: RoomVersion) -> None:
    room = Room(rv)
    content = {"creator": ALICE, "room_version": "999"}
    bad = room.build("C2", "m.room.create", ALICE, content, state_key="")
    with pytest.raises(AuthError, match="unknown room_version"):
        check_create_event(bad)
    good = room.build(
        "C3", "m.room.create", ALICE, {**content, "room_version": "7"}, state_key=""
    )
    check_create_event(good)


@versions()
def test_create_without_creator(rv: RoomVersion) -> None:
    """v1-v10 require `creator`; v11 (MSC2175) made the sender the creator."""
    room = Room(rv)
    event = room.build("C2", "m.room.create", ALICE, {}, state_key="")
    if rv.implicit_room_creator:
        check_create_event(event)
    else:
        with pytest.raises(AuthError, match="no creator"):
            check_create_event(event)


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ([BOB, CHARLIE], True),
        ([], True),
        ("@bob:example.com", False),
        ([BOB, 5], False),
        (["bob"], False),
        (["@bob"], False),
        (["@bob:bad host"], False),
        (["@" + "b" * 260 + ":example.com"], False),
    ],
)
def test_v12_additional_creators_must_be_user_ids(extra: object, ok: bool) -> None:
    room = Room(V["12"])
    event = room.build(
        "C2", "m.room.create", ALICE, {"additional_creators": extra}, state_key=""
    )
    if ok:
        check_create_event(event)
    else:
        with pytest.raises(AuthError, match="additional_creators"):
            check_create_event(event)
    # Before v12 the key means nothing to the auth rules.
    older = Room(V["11"])
    check_create_event(
        older.build(
            "C2", "m.room.create", ALICE, {"additional_creators": extra}, state_key=""
        )
    )


# -- auth_events shape (v11 rule 2 / v12 rule 3) ------------------------------------------
@versions()
def test_auth_events_duplicate_key_rejected(rv: RoomVersion) -> None:
    room = standard_room(rv)
    pl2 = room.power_levels(
        "PL2", ALICE, dict(room.events[room.state[("m.room.power_levels", "")]].content)
    )
    old_pl = event_id_for("IPOWER", rv)
    auth = [*pl2.auth_event_ids, old_pl]
    topic = room.build(
        "T", "m.room.topic", ALICE, {"topic": "x"}, state_key="", auth=auth
    )
    with pytest.raises(AuthError, match="two events"):
        check_state_independent_auth_rules(topic, room.events, room.create)


@versions()
def test_auth_events_unexpected_key_rejected(rv: RoomVersion) -> None:
    room = standard_room(rv)
    topic = room.send("T1", "m.room.topic", ALICE, {"topic": "x"}, state_key="")
    ev = room.build("T2", "m.room.topic", ALICE, {"topic": "y"}, state_key="")
    ev2 = room.build(
        "T3",
        "m.room.topic",
        ALICE,
        {"topic": "y"},
        state_key="",
        auth=[*ev.auth_event_ids, topic.event_id],
    )
    with pytest.raises(AuthError, match="not expected"):
        check_state_independent_auth_rules(ev2, room.events, room.create)
    # The target's membership is only expected for m.room.member events.
    bob_member = room.state[("m.room.member", BOB)]
    ev3 = room.build(
        "T4",
        "m.room.topic",
        ALICE,
        {"topic": "y"},
        state_key="",
        auth=[*ev.auth_event_ids, bob_member],
    )
    with pytest.raises(AuthError, match="not expected"):
        check_state_independent_auth_rules(ev3, room.events, room.create)


@versions(lambda rv: not rv.room_id_from_create_event)
def test_auth_events_must_include_create_before_v12(rv: RoomVersion) -> None:
    room = standard_room(rv)
    ev = room.build("T", "m.room.topic", ALICE, {"topic": "x"}, state_key="")
    without = [a for a in ev.auth_event_ids if a != room.create.event_id]
    ev2 = room.build(
        "T2", "m.room.topic", ALICE, {"topic": "x"}, state_key="", auth=without
    )
    with pytest.raises(AuthError, match=re.escape("no m.room.create")):
        check_state_independent_auth_rules(ev2, room.events, None)
    assert CREATE_KEY in auth_events_selection(ev)
    # A create event named by the caller must be the one cited.
    other = room.build("OTHER", "m.room.create", BOB, {"creator": BOB}, state_key="")
    with pytest.raises(AuthError, match="not the room's"):
        check_state_independent_auth_rules(ev, room.events, other)
    check_state_independent_auth_rules(ev, room.events, None)


def test_v12_create_must_not_be_in_auth_events() -> None:
    room = standard_room(V["12"])
    ev = room.build("T", "m.room.topic", ALICE, {"topic": "x"}, state_key="")
    assert room.create.event_id not in ev.auth_event_ids
    assert CREATE_KEY not in auth_events_selection(ev)
    assert CREATE_KEY in auth_types_for_event(ev)
    check_state_independent_auth_rules(ev, room.events, room.create)
    bad = room.build(
        "T2",
        "m.room.topic",
        ALICE,
        {"topic": "x"},
        state_key="",
        auth=[*ev.auth_event_ids, room.create.event_id],
    )
    with pytest.raises(
        AuthError, match=re.escape("must not include the m.room.create")
    ):
        check_state_independent_auth_rules(bad, room.events, room.create)


def test_v12_room_id_must_name_the_create_event() -> None:
    room = standard_room(V["12"])
    ev = room.build("T", "m.room.topic", ALICE, {"topic": "x"}, state_key="")
    with pytest.raises(AuthError, match="unknown"):
        check_state_independent_auth_rules(ev, room.events, None)
    other = Room(V["12"], creator=BOB)
    other_create = other.build("OTHER", "m.room.create", BOB, {}, state_key="")
    with pytest.raises(AuthError, match="not named after"):
        check_state_independent_auth_rules(ev, room.events, other_create)
    not_create = room.events[room.state[("m.room.join_rules", "")]]
    with pytest.raises(AuthError, match=re.escape("not an m.room.create")):
        check_state_independent_auth_rules(ev, room.events, not_create)


@versions()
def test_auth_events_rejected_unknown_or_other_room(rv: RoomVersion) -> None:
    room = standard_room(rv)
    ev = room.build("T", "m.room.topic", ALICE, {"topic": "x"}, state_key="")
    pl_id = room.state[("m.room.power_levels", "")]
    with pytest.raises(AuthError, match="was rejected"):
        check_state_independent_auth_rules(
            ev, room.events, room.create, rejected={pl_id}
        )
    missing = {k: v for k, v in room.events.items() if k != pl_id}
    with pytest.raises(AuthError, match="unknown"):
        check_state_independent_auth_rules(ev, missing, room.create)
    foreign = dict(room.events)
    pl = room.events[pl_id]
    moved = type(pl)({**pl.data, "room_id": "!other:example.com"}, pl_id, rv)
    foreign[pl_id] = moved
    with pytest.raises(AuthError, match="another room"):
        check_state_independent_auth_rules(ev, foreign, room.create)


@versions(lambda rv: rv.restricted_join_rule)
def test_restricted_join_must_be_signed_by_authorising_server(rv: RoomVersion) -> None:
    room = standard_room(rv)
    content = {
        "membership": "join",
        "join_authorised_via_users_server": "@bob:other.org",
    }
    ev = room.build("J", "m.room.member", REMOTE, content, state_key=REMOTE)
    with pytest.raises(
        AuthError, match=re.escape("not signed by the server of @bob:other.org")
    ):
        check_state_independent_auth_rules(ev, room.events, room.create)
    ev.data["signatures"]["other.org"] = {"ed25519:x": "sig"}
    # (the authoriser's membership key is then expected, but bob@other.org has none)
    check_state_independent_auth_rules(ev, room.events, room.create)
    ev.data["content"]["join_authorised_via_users_server"] = "not-a-user"
    with pytest.raises(AuthError, match="not a valid user ID"):
        check_state_independent_auth_rules(ev, room.events, room.create)


# -- m.federate (v11 rule 3) -------------------------------------------------------------
@versions()
def test_m_federate_false_blocks_other_servers(rv: RoomVersion) -> None:
    room = Room(rv, extra_content={"m.federate": False})
    room.member("IMA", ALICE, ALICE, "join")
    room.join_rules("IJR", ALICE, "public")
    remote_join = room.build(
        "RJ", "m.room.member", REMOTE, {"membership": "join"}, state_key=REMOTE
    )
    with pytest.raises(AuthError, match="does not federate"):
        check(room, remote_join)
    local_join = room.build(
        "LJ", "m.room.member", BOB, {"membership": "join"}, state_key=BOB
    )
    check(room, local_join)


# -- sender must be joined, required power level (v11 rules 5-8) ---------------------------
@versions()
def test_non_member_cannot_send(rv: RoomVersion) -> None:
    room = standard_room(rv)
    ev = room.build("M", "m.room.message", "@eve:example.com", {"body": "hi"})
    with pytest.raises(AuthError, match="not joined"):
        check(room, ev)
    check(room, room.build("M2", "m.room.message", CHARLIE, {"body": "hi"}))


@versions()
def test_required_power_level(rv: RoomVersion) -> None:
    room = standard_room(rv)
    # state_default defaults to 50: bob (50) may set the topic, charlie (0) may not.
    check(room, room.build("T1", "m.room.topic", BOB, {"topic": "x"}, state_key=""))
    with pytest.raises(AuthError, match="needs 50"):
        check(
            room,
            room.build("T2", "m.room.topic", CHARLIE, {"topic": "x"}, state_key=""),
        )
    # events overrides the defaults, for state and message events.
    room.power_levels(
        "PL2",
        ALICE,
        {
            "users": room.events[room.state[("m.room.power_levels", "")]].content[
                "users"
            ],
            "events": {"m.room.topic": 0, "m.reaction": 60},
            "events_default": 10,
        },
    )
    check(room, room.build("T3", "m.room.topic", CHARLIE, {"topic": "x"}, state_key=""))
    with pytest.raises(AuthError, match="needs 10"):
        check(room, room.build("M1", "m.room.message", CHARLIE, {}))
    with pytest.raises(AuthError, match="needs 60"):
        check(room, room.build("R1", "m.reaction", BOB, {}))


@versions()
def test_state_key_of_another_user(rv: RoomVersion) -> None:
    room = standard_room(rv)
    check(room, room.build("S1", "m.custom", ALICE, {}, state_key=ALICE))
    with pytest.raises(AuthError, match="another user"):
        check(room, room.build("S2", "m.custom", ALICE, {}, state_key=BOB))
    check(room, room.build("S3", "m.custom", ALICE, {}, state_key="x@bob:example.com"))
    with pytest.raises(AuthError, match="another user"):
        check(room, room.build("S4", "m.custom", ALICE, {}, state_key="@x"))


@versions()
def test_third_party_invite_event_needs_invite_level(rv: RoomVersion) -> None:
    room = standard_room(rv)
    pl = room.events[room.state[("m.room.power_levels", "")]]
    room.power_levels("PL2", ALICE, {**pl.content, "invite": 50, "state_default": 100})
    # rule 6 comes before rule 7: state_default 100 does not matter.
    tpi = room.build(
        "TPI", "m.room.third_party_invite", BOB, {"public_key": "k"}, state_key="tok"
    )
    check(room, tpi)
    low = room.build("TPI2", "m.room.third_party_invite", CHARLIE, {}, state_key="tok")
    with pytest.raises(AuthError, match="may not invite"):
        check(room, low)


# -- redactions -----------------------------------------------------------------------
@versions()
def test_redaction_rules(rv: RoomVersion) -> None:
    """v1/v2 rule 11: a redaction needs the redact level or the same event ID domain.

    From v3 the auth rules do not look at the redact level at all.
    """
    room = standard_room(rv)
    target = room.send("MSG", "m.room.message", ALICE, {"body": "x"})
    redacts = target.event_id
    foreign = "$abc:elsewhere.org" if rv.is_v1_event_format else "$abc"
    where = "content" if rv.redacts_in_content else "top"

    def redaction(name: str, sender: str, what: str) -> object:
        content = {"redacts": what} if where == "content" else {}
        extra = {"redacts": what} if where == "top" else None
        return room.build(name, "m.room.redaction", sender, content, extra=extra)

    check(room, redaction("R1", CHARLIE, redacts))  # type: ignore[arg-type]
    other_domain = redaction("R2", CHARLIE, foreign)
    if rv.is_v1_event_format:
        with pytest.raises(AuthError, match="may not redact"):
            check(room, other_domain)  # type: ignore[arg-type]
        # The redact level (50) lets bob redact anything.
        check(room, redaction("R3", BOB, foreign))  # type: ignore[arg-type]
    else:
        check(room, other_domain)  # type: ignore[arg-type]


# -- m.room.aliases (v1-v5 rule 4) ---------------------------------------------------------
@versions()
def test_aliases_special_case(rv: RoomVersion) -> None:
    room = standard_room(rv)
    # A user who is not even joined, of the server named by the state key.
    outsider = "@dave:example.com"
    ev = room.build(
        "AL",
        "m.room.aliases",
        outsider,
        {"aliases": ["#a:example.com"]},
        state_key="example.com",
    )
    wrong = room.build(
        "AL2", "m.room.aliases", outsider, {"aliases": []}, state_key="elsewhere.org"
    )
    if rv.special_case_aliases_auth:
        check(room, ev)
        with pytest.raises(AuthError, match="sender's domain"):
            check(room, wrong)
        no_key = room.build("AL3", "m.room.aliases", outsider, {"aliases": []})
        with pytest.raises(AuthError, match="no state_key"):
            check_state_dependent_auth_rules(no_key, room.auth_state())
    else:
        # Since v6 aliases are ordinary state events.
        with pytest.raises(AuthError, match="not joined"):
            check(room, ev)
        check(
            room,
            room.build("AL4", "m.room.aliases", ALICE, {}, state_key="example.com"),
        )


# -- auth event selection ----------------------------------------------------------------
@versions()
def test_auth_types_for_member_events(rv: RoomVersion) -> None:
    room = standard_room(rv)
    join = room.build(
        "J",
        "m.room.member",
        REMOTE,
        {"membership": "join", "join_authorised_via_users_server": BOB},
        state_key=REMOTE,
    )
    keys = auth_types_for_event(join)
    assert ("m.room.join_rules", "") in keys
    assert (("m.room.member", BOB) in keys) == rv.restricted_join_rule
    invite = room.build(
        "I",
        "m.room.member",
        ALICE,
        {"membership": "invite", "third_party_invite": {"signed": {"token": "abc"}}},
        state_key=CHARLIE,
    )
    assert ("m.room.third_party_invite", "abc") in auth_types_for_event(invite)
    leave = room.build(
        "L", "m.room.member", ALICE, {"membership": "leave"}, state_key=BOB
    )
    assert ("m.room.join_rules", "") not in auth_types_for_event(leave)
    assert auth_types_for_event(room.create) == set()
