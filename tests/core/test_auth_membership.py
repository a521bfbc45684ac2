"""Auth rules for m.room.member events across room versions (v11 rule 4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from ranvier.core.auth import AuthError, check_state_dependent_auth_rules
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import sign_json
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.core.auth_builders import (
    ALICE,
    BOB,
    CHARLIE,
    EVE,
    REMOTE,
    Room,
    check,
    standard_room,
    users_without_creators,
    versions,
)

V = KNOWN_ROOM_VERSIONS


def _join(room: Room, user: str, name: str = "J", **content: Any) -> Any:
    return room.build(
        name, "m.room.member", user, {"membership": "join", **content}, state_key=user
    )


# -- join -------------------------------------------------------------------------------
@versions()
def test_creator_first_join(rv: RoomVersion) -> None:
    room = Room(rv)
    check(room, _join(room, ALICE))
    # Nobody else may use the "only previous event is the create event" rule.
    with pytest.raises(AuthError):
        check(room, _join(room, BOB, "J2"))


def test_first_join_rule_uses_content_creator_before_v11() -> None:
    """Before v11 the creator is `content.creator`, which may differ from the sender."""
    room = Room(V["10"])
    room.create.data["content"]["creator"] = BOB
    check(room, _join(room, BOB))
    with pytest.raises(AuthError):
        check(room, _join(room, ALICE, "J2"))
    room11 = Room(V["11"])
    room11.create.data["content"]["creator"] = BOB  # meaningless since v11
    check(room11, _join(room11, ALICE))
    with pytest.raises(AuthError):
        check(room11, _join(room11, BOB, "J2"))


@versions()
def test_join_public_invite_ban(rv: RoomVersion) -> None:
    public = standard_room(rv)
    check(public, _join(public, EVE))
    with pytest.raises(AuthError, match="another user join"):
        check(
            public,
            public.build(
                "J", "m.room.member", ALICE, {"membership": "join"}, state_key=EVE
            ),
        )

    private = standard_room(rv, join_rule="invite")
    with pytest.raises(AuthError, match="not invited"):
        check(private, _join(private, EVE))
    private.member("INV", ALICE, EVE, "invite")
    check(private, _join(private, EVE, "J2"))
    private.member("BAN", ALICE, EVE, "ban")
    with pytest.raises(AuthError, match="banned"):
        check(private, _join(private, EVE, "J3"))


@versions()
def test_unknown_or_private_join_rule_rejects(rv: RoomVersion) -> None:
    for rule in ("private", "bogus"):
        room = standard_room(rv)
        room.join_rules("JR2", ALICE, rule)
        with pytest.raises(AuthError, match="join rule"):
            check(room, _join(room, EVE))


@versions()
def test_knock_join_rule_allows_invited_joins_since_v7(rv: RoomVersion) -> None:
    room = standard_room(rv)
    room.join_rules("JR2", ALICE, "knock")
    room.member("INV", ALICE, EVE, "invite")
    event = _join(room, EVE)
    if rv.knock_join_rule:
        check(room, event)
    else:
        # Before v7 "knock" is no join rule the rules know: rule "otherwise, reject".
        with pytest.raises(AuthError, match="join rule is 'knock'"):
            check(room, event)


def _restricted_room(rv: RoomVersion, rule: str = "restricted") -> Room:
    room = standard_room(rv)
    allow = [{"type": "m.room_membership", "room_id": "!space:example.com"}]
    room.join_rules("JR2", ALICE, rule, allow=allow)
    return room


@versions()
def test_restricted_join(rv: RoomVersion) -> None:
    room = _restricted_room(rv)
    event = _join(room, EVE, join_authorised_via_users_server=BOB)
    if not rv.restricted_join_rule:
        with pytest.raises(AuthError, match="join rule is 'restricted'"):
            check_state_dependent_auth_rules(event, room.auth_state())
        return
    check(room, event)
    with pytest.raises(AuthError, match="without join_authorised_via_users_server"):
        check(room, _join(room, EVE, "J2"))
    # The authorising user must be joined...
    with pytest.raises(AuthError, match="is not joined"):
        check_state_dependent_auth_rules(
            _join(room, EVE, "J3", join_authorised_via_users_server="@zed:example.com"),
            room.auth_state(),
        )
    # ...and able to invite.
    pl = room.events[room.state[("m.room.power_levels", "")]]
    room.power_levels("PL2", ALICE, {**pl.content, "invite": 60})
    with pytest.raises(AuthError, match="cannot invite"):
        check(room, _join(room, EVE, "J4", join_authorised_via_users_server=BOB))
    # An invited user needs no authoriser.
    room.member("INV", ALICE, EVE, "invite")
    check(room, _join(room, EVE, "J5"))


@versions()
def test_knock_restricted_join(rv: RoomVersion) -> None:
    room = _restricted_room(rv, "knock_restricted")
    event = _join(room, EVE, join_authorised_via_users_server=BOB)
    if rv.knock_restricted_join_rule:
        check(room, event)
        with pytest.raises(AuthError, match="without join_authorised_via_users_server"):
            check(room, _join(room, EVE, "J2"))
    else:
        with pytest.raises(AuthError, match="join rule is 'knock_restricted'"):
            check_state_dependent_auth_rules(event, room.auth_state())


# -- knock ------------------------------------------------------------------------------
def _knock(room: Room, user: str, name: str = "K", target: str | None = None) -> Any:
    return room.build(
        name, "m.room.member", user, {"membership": "knock"}, state_key=target or user
    )


@versions()
def test_knock(rv: RoomVersion) -> None:
    room = standard_room(rv)
    room.join_rules("JR2", ALICE, "knock")
    if not rv.knock_join_rule:
        with pytest.raises(AuthError, match="unknown membership 'knock'"):
            check(room, _knock(room, EVE))
        return
    check(room, _knock(room, EVE))
    with pytest.raises(AuthError, match="on behalf of another"):
        check(room, _knock(room, BOB, "K2", target=EVE))
    with pytest.raises(AuthError, match="while join"):
        check(room, _knock(room, CHARLIE, "K3"))
    room.member("BAN", ALICE, EVE, "ban")
    with pytest.raises(AuthError, match="while ban"):
        check(room, _knock(room, EVE, "K4"))


@versions(lambda rv: rv.knock_join_rule)
def test_knock_needs_a_knock_join_rule(rv: RoomVersion) -> None:
    public = standard_room(rv)
    with pytest.raises(AuthError, match="cannot knock"):
        check(public, _knock(public, EVE))
    room = _restricted_room(rv, "knock_restricted")
    if rv.knock_restricted_join_rule:
        check(room, _knock(room, EVE))
    else:
        with pytest.raises(AuthError, match="cannot knock"):
            check_state_dependent_auth_rules(_knock(room, EVE), room.auth_state())


# -- invite -----------------------------------------------------------------------------
def _invite(
    room: Room, sender: str, target: str, name: str = "I", **content: Any
) -> Any:
    return room.build(
        name,
        "m.room.member",
        sender,
        {"membership": "invite", **content},
        state_key=target,
    )


@versions()
def test_invite(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="invite")
    check(room, _invite(room, CHARLIE, EVE))  # invite level defaults to 0
    with pytest.raises(AuthError, match="is not joined"):
        check(room, _invite(room, EVE, ZED))
    with pytest.raises(AuthError, match="already joined"):
        check(room, _invite(room, ALICE, BOB))
    room.member("BAN", ALICE, EVE, "ban")
    with pytest.raises(AuthError, match="is banned"):
        check(room, _invite(room, ALICE, EVE, "I2"))
    pl = room.events[room.state[("m.room.power_levels", "")]]
    room.power_levels("PL2", ALICE, {**pl.content, "invite": 50})
    with pytest.raises(AuthError, match="may not invite"):
        check(room, _invite(room, CHARLIE, ZED, "I3"))
    check(room, _invite(room, BOB, ZED, "I4"))


ZED = "@zed:example.com"


def _tpi_room(rv: RoomVersion) -> Room:
    room = standard_room(rv, join_rule="invite")
    room.send(
        "TPI",
        "m.room.third_party_invite",
        BOB,
        {
            "display_name": "z",
            "public_key": "KEY1",
            "public_keys": [{"public_key": "KEY2"}],
        },
        state_key="tok",
    )
    return room


def _tpi_invite(
    room: Room, sender: str = BOB, mxid: str = ZED, token: str = "tok", **signed: Any
) -> Any:
    signed_block: dict[str, Any] = {
        "mxid": mxid,
        "token": token,
        "signatures": {"id.org": {"ed25519:0": "s"}},
    }
    signed_block.update(signed)
    return _invite(
        room,
        sender,
        ZED,
        "TI",
        third_party_invite={"display_name": "z", "signed": signed_block},
    )


@versions()
def test_third_party_invite(rv: RoomVersion) -> None:
    room = _tpi_room(rv)
    seen: list[str] = []

    def verify_key2(signed: Mapping[str, Any], key: str) -> bool:
        seen.append(key)
        return key == "KEY2" and signed["mxid"] == ZED

    check(room, _tpi_invite(room), verify_key2)
    assert seen == ["KEY1", "KEY2"]

    def never(signed: Mapping[str, Any], key: str) -> bool:
        return False

    with pytest.raises(AuthError, match="not signed by any"):
        check(room, _tpi_invite(room), never)
    # Without an injected verifier the real ed25519 check runs: "s" is no signature.
    with pytest.raises(AuthError, match="not signed by any"):
        check(room, _tpi_invite(room))
    with pytest.raises(AuthError, match="mxid does not match"):
        check(room, _tpi_invite(room, mxid=EVE), verify_key2)
    with pytest.raises(AuthError, match=re.escape("no m.room.third_party_invite")):
        check_state_dependent_auth_rules(
            _tpi_invite(room, token="other"),
            room.auth_state(),
            verify_third_party_invite=verify_key2,
        )
    # Only the sender of the m.room.third_party_invite may complete it (even if joined
    # and powerful).
    with pytest.raises(AuthError, match="did not send"):
        check(room, _tpi_invite(room, sender=ALICE), verify_key2)


@versions()
def test_third_party_invite_malformed_or_banned(rv: RoomVersion) -> None:
    room = _tpi_room(rv)

    def ok(signed: Mapping[str, Any], key: str) -> bool:
        return True

    no_signed = _invite(room, BOB, ZED, third_party_invite={"display_name": "z"})
    with pytest.raises(AuthError, match="no signed block"):
        check_state_dependent_auth_rules(
            no_signed, room.auth_state(), verify_third_party_invite=ok
        )
    no_token = _invite(room, BOB, ZED, third_party_invite={"signed": {"mxid": ZED}})
    with pytest.raises(AuthError, match="lacks mxid or token"):
        check_state_dependent_auth_rules(
            no_token, room.auth_state(), verify_third_party_invite=ok
        )
    room.member("BAN", ALICE, ZED, "ban")
    with pytest.raises(AuthError, match="banned"):
        check(room, _tpi_invite(room), ok)


# -- leave / kick / unban -------------------------------------------------------------------
def _leave(room: Room, sender: str, target: str, name: str = "L") -> Any:
    return room.build(
        name, "m.room.member", sender, {"membership": "leave"}, state_key=target
    )


@versions()
def test_self_leave(rv: RoomVersion) -> None:
    room = standard_room(rv, join_rule="knock" if rv.knock_join_rule else "invite")
    check(room, _leave(room, BOB, BOB))  # joined
    room.member("INV", ALICE, EVE, "invite")
    check(room, _leave(room, EVE, EVE, "L2"))  # invited: reject the invite
    with pytest.raises(AuthError, match="cannot leave"):
        check(room, _leave(room, ZED, ZED, "L3"))  # never in the room
    if rv.knock_join_rule:
        room.member("KN", ZED, ZED, "knock")
        check(room, _leave(room, ZED, ZED, "L4"))  # rescind a knock
    room.member("BAN", ALICE, EVE, "ban")
    with pytest.raises(AuthError, match="cannot leave"):
        check(room, _leave(room, EVE, EVE, "L5"))


@versions()
def test_kick(rv: RoomVersion) -> None:
    room = standard_room(rv)
    check(room, _leave(room, BOB, CHARLIE))  # 50 >= kick 50, target 0 < 50
    check(room, _leave(room, ALICE, BOB, "L2"))
    with pytest.raises(AuthError, match="may not kick"):
        check(room, _leave(room, BOB, ALICE, "L3"))
    with pytest.raises(AuthError, match="may not kick"):
        check(room, _leave(room, CHARLIE, BOB, "L4"))
    with pytest.raises(AuthError, match="is not joined"):
        check(room, _leave(room, EVE, CHARLIE, "L5"))
    # Equal levels cannot kick each other.
    pl = room.events[room.state[("m.room.power_levels", "")]]
    users = {**pl.content["users"], CHARLIE: 50}
    room.power_levels("PL2", ALICE, {**pl.content, "users": users})
    with pytest.raises(AuthError, match="may not kick"):
        check(room, _leave(room, BOB, CHARLIE, "L6"))


@versions()
def test_unban_needs_ban_and_kick_level(rv: RoomVersion) -> None:
    room = standard_room(rv)
    room.member("BAN", BOB, EVE, "ban")
    check(room, _leave(room, BOB, EVE))
    pl = room.events[room.state[("m.room.power_levels", "")]]
    room.power_levels("PL2", ALICE, {**pl.content, "ban": 75})
    with pytest.raises(AuthError, match="may not unban"):
        check(room, _leave(room, BOB, EVE, "L2"))
    check(room, _leave(room, ALICE, EVE, "L3"))


# -- ban --------------------------------------------------------------------------------
@versions()
def test_ban(rv: RoomVersion) -> None:
    room = standard_room(rv)
    ban = "ban"
    check(
        room,
        room.build("B1", "m.room.member", BOB, {"membership": ban}, state_key=CHARLIE),
    )
    check(
        room, room.build("B2", "m.room.member", BOB, {"membership": ban}, state_key=EVE)
    )
    with pytest.raises(AuthError, match="may not ban"):
        check(
            room,
            room.build(
                "B3", "m.room.member", BOB, {"membership": ban}, state_key=ALICE
            ),
        )
    with pytest.raises(AuthError, match="may not ban"):
        check(
            room,
            room.build(
                "B4", "m.room.member", CHARLIE, {"membership": ban}, state_key=EVE
            ),
        )
    with pytest.raises(AuthError, match="is not joined"):
        check(
            room,
            room.build(
                "B5", "m.room.member", EVE, {"membership": ban}, state_key=CHARLIE
            ),
        )


@versions()
def test_member_event_shape(rv: RoomVersion) -> None:
    room = standard_room(rv)
    no_key = room.build("M1", "m.room.member", BOB, {"membership": "join"})
    with pytest.raises(AuthError, match="no state_key"):
        check_state_dependent_auth_rules(no_key, room.auth_state())
    no_membership = room.build("M2", "m.room.member", BOB, {}, state_key=BOB)
    with pytest.raises(AuthError, match="no membership"):
        check_state_dependent_auth_rules(no_membership, room.auth_state())
    odd = room.build("M3", "m.room.member", BOB, {"membership": "dance"}, state_key=BOB)
    with pytest.raises(AuthError, match="unknown membership"):
        check_state_dependent_auth_rules(odd, room.auth_state())


# -- v12 (MSC4289): creators have infinite power ----------------------------------------------
def test_v12_additional_creator_outranks_everyone() -> None:
    rv = V["12"]
    room = Room(rv, additional_creators=[BOB])
    room.member("IMA", ALICE, ALICE, "join")
    room.power_levels("IPOWER", ALICE, {"users": {CHARLIE: 100}})
    room.join_rules("IJR", ALICE, "public")
    room.member("IMB", BOB, BOB, "join")
    room.member("IMC", CHARLIE, CHARLIE, "join")
    # Bob (additional creator, not in users) kicks charlie (100).
    check(room, _leave(room, BOB, CHARLIE))
    # Charlie (100) cannot ban a creator.
    with pytest.raises(AuthError, match="may not ban"):
        check(
            room,
            room.build(
                "B", "m.room.member", CHARLIE, {"membership": "ban"}, state_key=BOB
            ),
        )
    # Creators cannot kick each other: neither level is below the other.
    with pytest.raises(AuthError, match="may not kick"):
        check(room, _leave(room, ALICE, BOB, "L2"))


@versions(lambda rv: rv.implicit_room_creator)
def test_remote_creator_in_v11_plus(rv: RoomVersion) -> None:
    room = Room(rv, creator=REMOTE)
    assert room.create.sender == REMOTE
    check(room, _join(room, REMOTE))
    assert users_without_creators(rv, {REMOTE: 100}, REMOTE) == (
        {} if rv.privileged_creators else {REMOTE: 100}
    )


@versions()
def test_third_party_invite_real_signatures(rv: RoomVersion) -> None:
    """The default verifier: ed25519 over canonical `signed`, any key of the event."""
    good = SigningKey.from_seed(b"\x01" * 32, "0")
    other = SigningKey.from_seed(b"\x02" * 32, "0")
    room = standard_room(rv, join_rule="invite")
    room.send(
        "TPI",
        "m.room.third_party_invite",
        BOB,
        {
            "display_name": "z",
            "public_key": other.public_key_base64,
            "public_keys": [{"public_key": good.public_key_base64}],
        },
        state_key="tok",
    )

    def invite(signed: dict[str, Any], name: str) -> Any:
        return _invite(
            room,
            BOB,
            ZED,
            name,
            third_party_invite={"display_name": "z", "signed": signed},
        )

    block = {"mxid": ZED, "token": "tok"}
    check(room, invite(sign_json(block, "id.org", good), "T1"))
    forged = SigningKey.from_seed(b"\x03" * 32, "0")
    with pytest.raises(AuthError, match="not signed by any"):
        check(room, invite(sign_json(block, "id.org", forged), "T2"))
    with pytest.raises(AuthError, match="not signed by any"):
        check(room, invite(dict(block), "T3"))  # unsigned
    tampered = {**sign_json(block, "id.org", good), "mxid": EVE}
    with pytest.raises(AuthError, match="mxid does not match"):
        check(room, invite(tampered, "T4"))
