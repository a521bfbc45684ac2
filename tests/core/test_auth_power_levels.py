"""Power levels: the m.room.power_levels change rules and the level helpers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ranvier.core.auth import (
    INFINITE_POWER,
    AuthError,
    check_state_dependent_auth_rules,
    get_creators,
    get_named_level,
    get_power_levels_content,
    get_send_level,
    get_user_power_level,
)
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.core.auth_builders import (
    ALICE,
    BOB,
    CHARLIE,
    EVE,
    Room,
    check,
    standard_room,
    users_without_creators,
    versions,
)

V = KNOWN_ROOM_VERSIONS


def _users(rv: RoomVersion, **levels: int) -> dict[str, int]:
    named = {ALICE: 100, BOB: 50, **{f"@{k}:example.com": v for k, v in levels.items()}}
    return users_without_creators(rv, named, ALICE)


def _pl(room: Room, name: str, sender: str, content: dict[str, Any]) -> Any:
    return room.build(name, "m.room.power_levels", sender, content, state_key="")


# -- levels -----------------------------------------------------------------------------
@versions()
def test_levels_without_power_levels_event(rv: RoomVersion) -> None:
    room = Room(rv)
    room.member("IMA", ALICE, ALICE, "join")
    state = room.auth_state()
    expected_alice = INFINITE_POWER if rv.privileged_creators else 100
    assert get_user_power_level(ALICE, state) == expected_alice
    assert get_user_power_level(BOB, state) == 0
    content = get_power_levels_content(state)
    assert content["users"] == ({} if rv.privileged_creators else {ALICE: 100})
    assert get_send_level("m.room.topic", True, content) == 50
    assert get_send_level("m.room.message", False, content) == 0
    assert [
        get_named_level(content, n) for n in ("ban", "kick", "redact", "invite")
    ] == [
        50,
        50,
        50,
        0,
    ]


def test_level_defaults_with_sparse_event() -> None:
    content: dict[str, Any] = {"events": {"m.room.name": 20}}
    assert get_send_level("m.room.name", True, content) == 20
    assert get_send_level("m.room.topic", True, content) == 50
    assert get_send_level("m.room.message", False, content) == 0
    assert get_named_level(content, "invite") == 0
    assert get_named_level({"ban": "75"}, "ban") == 75  # stringy, as stored pre-v10
    assert get_named_level({"kick": 30.9}, "kick") == 30  # floaty, as stored pre-v6


def test_user_level_from_users_default() -> None:
    room = standard_room(V["9"])
    room.power_levels(
        "PL2", ALICE, {"users": {ALICE: 100, BOB: " 40 "}, "users_default": "7"}
    )
    state = room.auth_state()
    assert get_user_power_level(BOB, state) == 40
    assert get_user_power_level(CHARLIE, state) == 7


def test_v12_creators() -> None:
    room = Room(V["12"], additional_creators=[BOB])
    assert get_creators(room.create) == {ALICE, BOB}
    state = room.auth_state()
    assert get_user_power_level(BOB, state) == INFINITE_POWER
    assert get_creators(Room(V["10"]).create) == {ALICE}
    older = Room(V["11"], additional_creators=[BOB])
    assert get_creators(older.create) == {ALICE}


# -- validation of the new content (rules 9.1-9.3) ---------------------------------------------
@versions()
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ban", "50"),
        ("state_default", " +0050 "),
        ("users", {BOB: "50"}),
        ("events", {"m.x": "10"}),
    ],
)
def test_stringy_levels_only_before_v10(
    rv: RoomVersion, field: str, value: Any
) -> None:
    room = standard_room(rv)
    content: dict[str, Any] = {"users": _users(rv)}
    if field == "users":
        content["users"] = {**content["users"], **value}
    else:
        content[field] = value
    event = _pl(room, "PL2", ALICE, content)
    if rv.enforce_int_power_levels:
        with pytest.raises(AuthError, match="integer"):
            check(room, event)
    else:
        check(room, event)


@versions()
def test_floaty_levels_only_before_v6(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = _pl(room, "PL2", ALICE, {"users": {**_users(rv), CHARLIE: 10.7}})
    if rv.strict_canonicaljson:
        with pytest.raises(AuthError, match="not an integer"):
            check(room, event)
    else:
        check(room, event)
        room.add(event)
        assert get_user_power_level(CHARLIE, room.auth_state()) == 10


@versions()
@pytest.mark.parametrize(
    "content",
    [
        {"ban": "fifty"},
        {"ban": True},
        {"ban": "5_0"},
        {"users": {"bob": 50}},
        {"users": []},
        {"events": []},
        {"events": {"m.x": "x"}},
    ],
    ids=[
        "word",
        "bool",
        "underscore",
        "bad-user",
        "users-list",
        "events-list",
        "events-word",
    ],
)
def test_invalid_values_rejected(rv: RoomVersion, content: dict[str, Any]) -> None:
    room = standard_room(rv)
    full = {"users": _users(rv), **content}
    with pytest.raises(AuthError):
        check(room, _pl(room, "PL2", ALICE, full))


@versions()
def test_notifications_validated_since_v6(rv: RoomVersion) -> None:
    room = standard_room(rv)
    event = _pl(
        room, "PL2", ALICE, {"users": _users(rv), "notifications": {"room": "lots"}}
    )
    if rv.limit_notifications_power_levels:
        with pytest.raises(AuthError, match="notifications"):
            check(room, event)
    else:
        check(room, event)


@versions(lambda rv: rv.privileged_creators)
def test_v12_creators_must_not_be_in_users(rv: RoomVersion) -> None:
    room = Room(rv, additional_creators=[BOB])
    room.member("IMA", ALICE, ALICE, "join")
    with pytest.raises(AuthError, match="creators"):
        check(room, _pl(room, "PL1", ALICE, {"users": {ALICE: 100}}))
    with pytest.raises(AuthError, match="creators"):
        check(room, _pl(room, "PL2", ALICE, {"users": {BOB: 100}}))
    check(room, _pl(room, "PL3", ALICE, {"users": {CHARLIE: 100}}))


# -- changes (rules 9.4-9.9) -----------------------------------------------------------------
@versions()
def test_first_power_levels_event_is_allowed(rv: RoomVersion) -> None:
    room = Room(rv)
    room.member("IMA", ALICE, ALICE, "join")
    check(room, _pl(room, "PL1", ALICE, {"users": _users(rv, eve=100), "ban": 1000}))


@versions()
def test_named_levels_changes(rv: RoomVersion) -> None:
    room = standard_room(rv)
    base = {"users": _users(rv), "events": {"m.room.power_levels": 50}}
    room.power_levels("PL2", ALICE, base)
    # Bob (50) may lower kick (default 50) to 40 and raise it to 50, not to 51.
    check(room, _pl(room, "P1", BOB, {**base, "kick": 40}))
    check(room, _pl(room, "P2", BOB, {**base, "kick": 50}))
    with pytest.raises(AuthError, match="'kick' to 51"):
        check(room, _pl(room, "P3", BOB, {**base, "kick": 51}))
    room.power_levels("PL3", ALICE, {**base, "ban": 80})
    # Bob cannot touch (change or remove) a level above his own.
    with pytest.raises(AuthError, match="'ban' from 80"):
        check(room, _pl(room, "P4", BOB, base))
    with pytest.raises(AuthError, match="'ban' from 80"):
        check(room, _pl(room, "P5", BOB, {**base, "ban": 10}))
    # Unchanged values are fine even when above the sender, whatever their spelling.
    check(room, _pl(room, "P6", BOB, {**base, "ban": 80, "redact": 0}))


@versions()
def test_events_changes(rv: RoomVersion) -> None:
    room = standard_room(rv)
    base = {
        "users": _users(rv),
        "events": {"m.room.power_levels": 50, "m.room.name": 70},
    }
    room.power_levels("PL2", ALICE, base)
    events = base["events"]
    with pytest.raises(AuthError, match=re.escape("events['m.room.name']")):
        check(
            room,
            _pl(room, "P1", BOB, {**base, "events": {**events, "m.room.name": 10}}),
        )
    with pytest.raises(AuthError, match=re.escape("events['m.room.topic'] to 60")):
        check(
            room,
            _pl(room, "P2", BOB, {**base, "events": {**events, "m.room.topic": 60}}),
        )
    check(
        room, _pl(room, "P3", BOB, {**base, "events": {**events, "m.room.topic": 50}})
    )


@versions()
def test_notifications_changes_limited_since_v6(rv: RoomVersion) -> None:
    room = standard_room(rv)
    base = {
        "users": _users(rv),
        "events": {"m.room.power_levels": 50},
        "notifications": {"room": 90},
    }
    room.power_levels("PL2", ALICE, base)
    lower = _pl(room, "P1", BOB, {**base, "notifications": {"room": 10}})
    if rv.limit_notifications_power_levels:
        with pytest.raises(AuthError, match=re.escape("notifications['room']")):
            check(room, lower)
    else:
        check(room, lower)


@versions()
def test_users_changes(rv: RoomVersion) -> None:
    room = standard_room(rv)
    base = {
        "users": _users(rv, charlie=10, eve=50),
        "events": {"m.room.power_levels": 50},
    }
    room.power_levels("PL2", ALICE, base)
    users = base["users"]
    # Bob (50) may promote charlie up to his own level, not beyond.
    check(room, _pl(room, "P1", BOB, {**base, "users": {**users, CHARLIE: 50}}))
    with pytest.raises(AuthError, match=re.escape("raise @charlie:example.com to 51")):
        check(room, _pl(room, "P2", BOB, {**base, "users": {**users, CHARLIE: 51}}))
    # ...may demote charlie (10 < 50) but not eve (50 >= 50), nor remove her.
    check(room, _pl(room, "P3", BOB, {**base, "users": {**users, CHARLIE: 0}}))
    with pytest.raises(AuthError, match="level of @eve"):
        check(room, _pl(room, "P4", BOB, {**base, "users": {**users, EVE: 0}}))
    without_eve = {u: lvl for u, lvl in users.items() if u != EVE}
    with pytest.raises(AuthError, match="level of @eve"):
        check(room, _pl(room, "P5", BOB, {**base, "users": without_eve}))
    # ...may demote himself.
    check(room, _pl(room, "P6", BOB, {**base, "users": {**users, BOB: 0}}))
    # Alice may not raise anyone above 100 unless she is a v12 creator (infinite power).
    above = _pl(room, "P7", ALICE, {**base, "users": {**users, CHARLIE: 101}})
    if rv.privileged_creators:
        check(room, above)
    else:
        with pytest.raises(AuthError, match="to 101"):
            check(room, above)


@versions()
def test_power_levels_need_state_level(rv: RoomVersion) -> None:
    room = standard_room(rv)
    # Charlie (0) cannot send m.room.power_levels at all (state_default 50).
    with pytest.raises(AuthError, match="needs 50"):
        check_state_dependent_auth_rules(
            _pl(room, "P1", CHARLIE, {"users": _users(rv)}), room.auth_state()
        )
