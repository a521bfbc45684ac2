"""Authorization rules for `m.room.member` events (v11 rule 4, v12 rule 5).

Step numbers below are those of room v11 (v12 adds one rule in front, so its numbers are
one higher; v1-v7 lack the `join_authorised_via_users_server` step, so theirs are lower).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.auth.errors import AuthError
from ranvier.core.auth.levels import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    get_named_level,
    get_original_creator,
    get_power_levels_content,
    get_user_power_level,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.core.threepid import verify_third_party_signed

# Checks the `signed` block of a third-party invite against one public key (unpadded
# base64 ed25519, as in the m.room.third_party_invite event): True if any signature in
# `signed` verifies with it. Without one, `core.threepid.verify_third_party_signed`
# (pure ed25519) is used; tests may inject another.
ThirdPartyInviteVerifier = Callable[[Mapping[str, Any], str], bool]


@dataclass(frozen=True, slots=True)
class _Member:
    """What the membership rules read about one event and the state it is checked in."""

    event: Event
    auth_state: Mapping[StateKey, Event]
    target: str
    pl_content: Mapping[str, Any]

    def membership_of(self, user_id: str) -> str | None:
        member = self.auth_state.get(("m.room.member", user_id))
        return member.membership if member is not None else None

    def level_of(self, user_id: str) -> int | float:
        return get_user_power_level(user_id, self.auth_state)

    @property
    def sender_level(self) -> int | float:
        return self.level_of(self.event.sender)

    @property
    def join_rule(self) -> str:
        # No join rules event: treat the room as invite-only, as Synapse and ruma do.
        jr = self.auth_state.get(JOIN_RULES_KEY)
        rule = jr.content.get("join_rule", "invite") if jr is not None else "invite"
        return rule if isinstance(rule, str) else ""


def check_membership(
    event: Event,
    auth_state: Mapping[StateKey, Event],
    verify_third_party_invite: ThirdPartyInviteVerifier | None,
) -> None:
    """v11 rule 4: allow or reject an `m.room.member` event (raises `AuthError`)."""
    # 4.1: if there is no state_key property, or no membership property in content,
    # reject.
    target = event.state_key
    if target is None:
        raise AuthError("m.room.member event has no state_key")
    membership = event.content.get("membership")
    if not isinstance(membership, str):
        raise AuthError("m.room.member event has no membership")
    ctx = _Member(event, auth_state, target, get_power_levels_content(auth_state))
    rules = event.room_version
    if membership == "join":
        _check_join(ctx, rules)
    elif membership == "invite":
        _check_invite(ctx, verify_third_party_invite)
    elif membership == "leave":
        _check_leave(ctx, rules)
    elif membership == "ban":
        _check_ban(ctx)
    elif membership == "knock" and rules.knock_join_rule:
        _check_knock(ctx, rules)
    else:
        # 4.8 (4.6 before v7): otherwise, the membership is unknown. Reject.
        raise AuthError(f"unknown membership {membership!r}")


def _check_join(ctx: _Member, rules: RoomVersion) -> None:
    event = ctx.event
    # 4.3.1: if the only previous event is an m.room.create and the state_key is the
    # creator (the create event's sender since v11), allow.
    create = ctx.auth_state[CREATE_KEY]
    if event.prev_event_ids == [create.event_id] and ctx.target == get_original_creator(
        create
    ):
        return
    # 4.3.2: if the sender does not match state_key, reject.
    if event.sender != ctx.target:
        raise AuthError("cannot make another user join")
    current = ctx.membership_of(event.sender)
    # 4.3.3: if the sender is banned, reject.
    if current == "ban":
        raise AuthError(f"{event.sender} is banned")
    join_rule = ctx.join_rule
    # 4.3.4: if the join_rule is invite or knock (v7+), allow if membership state is
    # invite or join.
    if join_rule == "invite" or (join_rule == "knock" and rules.knock_join_rule):
        if current in ("invite", "join"):
            return
        raise AuthError(f"{event.sender} is not invited")
    # 4.3.5: restricted (v8+) or knock_restricted (v10+).
    if (join_rule == "restricted" and rules.restricted_join_rule) or (
        join_rule == "knock_restricted" and rules.knock_restricted_join_rule
    ):
        _check_restricted_join(ctx, current)
        return
    # 4.3.6: if the join_rule is public, allow.
    if join_rule == "public":
        return
    # 4.3.7: otherwise, reject.
    raise AuthError(f"cannot join a room whose join rule is {join_rule!r}")


def _check_restricted_join(ctx: _Member, current: str | None) -> None:
    # 4.3.5.1: if membership state is join or invite, allow.
    if current in ("invite", "join"):
        return
    # 4.3.5.2: if join_authorised_via_users_server is not a joined user able to invite,
    # reject.
    authoriser = ctx.event.content.get("join_authorised_via_users_server")
    if not isinstance(authoriser, str):
        raise AuthError("restricted join without join_authorised_via_users_server")
    if ctx.membership_of(authoriser) != "join":
        raise AuthError(f"authorising user {authoriser} is not joined")
    if ctx.level_of(authoriser) < get_named_level(ctx.pl_content, "invite"):
        raise AuthError(f"authorising user {authoriser} cannot invite")
    # 4.3.5.3: otherwise, allow.


def _check_invite(ctx: _Member, verify: ThirdPartyInviteVerifier | None) -> None:
    event = ctx.event
    target_membership = ctx.membership_of(ctx.target)
    # 4.4.1: if content has a third_party_invite property, the invite is checked against
    # the m.room.third_party_invite event instead of the sender's power.
    if "third_party_invite" in event.content:
        _check_third_party_invite(ctx, target_membership, verify)
        return
    # 4.4.2: if the sender's current membership state is not join, reject.
    if ctx.membership_of(event.sender) != "join":
        raise AuthError(f"{event.sender} is not joined")
    # 4.4.3: if target user's current membership state is join or ban, reject.
    if target_membership == "ban":
        raise AuthError(f"{ctx.target} is banned")
    if target_membership == "join":
        raise AuthError(f"{ctx.target} is already joined")
    # 4.4.4: if the sender's power level >= the invite level, allow; 4.4.5: else reject.
    if ctx.sender_level < get_named_level(ctx.pl_content, "invite"):
        raise AuthError(f"{event.sender} may not invite")


def _check_third_party_invite(
    ctx: _Member, target_membership: str | None, verify: ThirdPartyInviteVerifier | None
) -> None:
    event = ctx.event
    # 4.4.1.1: if target user is banned, reject.
    if target_membership == "ban":
        raise AuthError(f"{ctx.target} is banned")
    tpi = event.content["third_party_invite"]
    # 4.4.1.2: if content.third_party_invite does not have a signed property, reject.
    signed = tpi.get("signed") if isinstance(tpi, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("third_party_invite has no signed block")
    # 4.4.1.3: if signed does not have mxid and token properties, reject.
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("third_party_invite.signed lacks mxid or token")
    # 4.4.1.4: if mxid does not match state_key, reject.
    if mxid != ctx.target:
        raise AuthError("third_party_invite mxid does not match the state_key")
    # 4.4.1.5: no m.room.third_party_invite event with state_key == token, reject.
    invite = ctx.auth_state.get(("m.room.third_party_invite", token))
    if invite is None:
        raise AuthError(f"no m.room.third_party_invite for token {token!r}")
    # 4.4.1.6: if sender does not match sender of the m.room.third_party_invite, reject.
    if invite.sender != event.sender:
        raise AuthError("sender did not send the m.room.third_party_invite")
    # 4.4.1.7: if any signature in signed matches any public key, allow; 4.4.1.8: reject.
    check = verify if verify is not None else verify_third_party_signed
    if not any(check(signed, key) for key in _public_keys(invite.content)):
        raise AuthError("third_party_invite is not signed by any of the invite's keys")


def _public_keys(content: Mapping[str, Any]) -> list[str]:
    # 4.4.1.7.1: a single public key in public_key; 4.4.1.7.2: a list in public_keys.
    keys: list[str] = []
    single = content.get("public_key")
    if isinstance(single, str):
        keys.append(single)
    many = content.get("public_keys")
    if isinstance(many, list):
        for entry in many:
            key = entry.get("public_key") if isinstance(entry, Mapping) else None
            if isinstance(key, str):
                keys.append(key)
    return keys


def _check_leave(ctx: _Member, rules: RoomVersion) -> None:
    event = ctx.event
    sender_membership = ctx.membership_of(event.sender)
    # 4.5.1: if the sender matches state_key, allow iff that user's current membership is
    # invite, join, or knock (knock since v7).
    if event.sender == ctx.target:
        allowed = (
            {"invite", "join", "knock"} if rules.knock_join_rule else {"invite", "join"}
        )
        if sender_membership in allowed:
            return
        raise AuthError(f"{event.sender} cannot leave from {sender_membership!r}")
    # 4.5.2: if the sender's current membership state is not join, reject.
    if sender_membership != "join":
        raise AuthError(f"{event.sender} is not joined")
    sender_level = ctx.sender_level
    # 4.5.3: if the target is banned and the sender's level < ban level, reject.
    if ctx.membership_of(ctx.target) == "ban" and sender_level < get_named_level(
        ctx.pl_content, "ban"
    ):
        raise AuthError(f"{event.sender} may not unban")
    # 4.5.4: if sender's level >= kick level and target's level < sender's, allow.
    if sender_level >= get_named_level(ctx.pl_content, "kick") and (
        ctx.level_of(ctx.target) < sender_level
    ):
        return
    # 4.5.5: otherwise, reject.
    raise AuthError(f"{event.sender} may not kick {ctx.target}")


def _check_ban(ctx: _Member) -> None:
    event = ctx.event
    # 4.6.1: if the sender's current membership state is not join, reject.
    if ctx.membership_of(event.sender) != "join":
        raise AuthError(f"{event.sender} is not joined")
    # 4.6.2: if sender's level >= ban level and target's level < sender's, allow.
    sender_level = ctx.sender_level
    if sender_level >= get_named_level(ctx.pl_content, "ban") and (
        ctx.level_of(ctx.target) < sender_level
    ):
        return
    # 4.6.3: otherwise, reject.
    raise AuthError(f"{event.sender} may not ban {ctx.target}")


def _check_knock(ctx: _Member, rules: RoomVersion) -> None:
    event = ctx.event
    join_rule = ctx.join_rule
    # 4.7.1: if the join_rule is anything other than knock or knock_restricted (v10+),
    # reject.
    if not (
        join_rule == "knock"
        or (join_rule == "knock_restricted" and rules.knock_restricted_join_rule)
    ):
        raise AuthError(f"cannot knock on a room whose join rule is {join_rule!r}")
    # 4.7.2: if sender does not match state_key, reject.
    if event.sender != ctx.target:
        raise AuthError("cannot knock on behalf of another user")
    # 4.7.3: if the sender's current membership is not ban, invite, or join, allow.
    current = ctx.membership_of(event.sender)
    if current in ("ban", "invite", "join"):
        # 4.7.4: otherwise, reject.
        raise AuthError(f"{event.sender} cannot knock while {current}")
