"""Builders for auth-rule and state-resolution tests: rooms of made-up events.

Event IDs are invented (no hashes): `$name` for room v3+, `$name:example.com` for v1/v2
(whose event IDs carry a domain). Since v12 the room ID is the create event's ID with `!`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from ranvier.core.auth import (
    ThirdPartyInviteVerifier,
    auth_events_selection,
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

DOMAIN = "example.com"
ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
EVE = "@eve:example.com"
ZARA = "@zara:example.com"
REMOTE = "@remote:elsewhere.org"

ALL_VERSIONS = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)]


def event_id_for(name: str, rv: RoomVersion) -> str:
    return f"${name}:{DOMAIN}" if rv.is_v1_event_format else f"${name}"


def _refs(ids: Iterable[str], rv: RoomVersion) -> list[Any]:
    if rv.is_v1_event_format:
        return [[i, {"sha256": "x"}] for i in ids]
    return list(ids)


class Room:
    """A linear room history; `state` is the current state after the last event."""

    def __init__(
        self,
        rv: RoomVersion,
        creator: str = ALICE,
        extra_content: Mapping[str, Any] | None = None,
        **create_content: Any,
    ) -> None:
        self.rv = rv
        self.events: dict[str, Event] = {}
        self.state: dict[StateKey, str] = {}
        self.ts = 0
        self.last: list[str] = []
        content: dict[str, Any] = {**(extra_content or {}), **create_content}
        if not rv.implicit_room_creator:
            content.setdefault("creator", creator)
        self.create = self.send(
            "CREATE", "m.room.create", creator, content, state_key=""
        )
        self.room_id = self.create.room_id

    # -- building --------------------------------------------------------------------
    def build(
        self,
        name: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        prev: list[str] | None = None,
        auth: list[str] | None = None,
        state: Mapping[StateKey, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Event:
        """Make an event without adding it to the room's history.

        Auth events are picked from `state` (default: current state) by the auth events
        selection unless `auth` names them.
        """
        rv = self.rv
        event_id = event_id_for(name, rv)
        self.ts += 1
        data: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": dict(content),
            "origin_server_ts": self.ts,
            "depth": len(self.events) + 1,
            "prev_events": _refs(self.last if prev is None else prev, rv),
            "auth_events": [],
            "signatures": {sender.split(":", 1)[1]: {"ed25519:a": "sig"}},
        }
        if rv.is_v1_event_format:
            data["event_id"] = event_id
        if state_key is not None:
            data["state_key"] = state_key
        if event_type == "m.room.create":
            data["prev_events"] = []
            if not rv.room_id_from_create_event:
                data["room_id"] = f"!room:{sender.split(':', 1)[1]}"
        else:
            data["room_id"] = self.room_id
        if extra:
            data.update(extra)
        event = Event(data, event_id, rv)
        if auth is None:
            source = self.state if state is None else state
            keys = auth_events_selection(event)
            auth = [source[k] for k in sorted(keys) if k in source]
        data["auth_events"] = _refs(auth, rv)
        return event

    def send(
        self,
        name: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        **kwargs: Any,
    ) -> Event:
        """Build an event and append it to the history, updating the state."""
        event = self.build(
            name, event_type, sender, content, state_key=state_key, **kwargs
        )
        self.add(event)
        return event

    def add(self, event: Event) -> None:
        self.events[event.event_id] = event
        self.last = [event.event_id]
        if event.is_state():
            self.state[event.state_tuple] = event.event_id

    # -- common events ---------------------------------------------------------------
    def member(
        self, name: str, sender: str, target: str, membership: str, **kw: Any
    ) -> Event:
        content = {"membership": membership, **kw.pop("content", {})}
        return self.send(name, "m.room.member", sender, content, state_key=target, **kw)

    def power_levels(self, name: str, sender: str, content: Mapping[str, Any]) -> Event:
        return self.send(name, "m.room.power_levels", sender, content, state_key="")

    def join_rules(self, name: str, sender: str, rule: str, **content: Any) -> Event:
        return self.send(
            name,
            "m.room.join_rules",
            sender,
            {"join_rule": rule, **content},
            state_key="",
        )

    # -- reading ---------------------------------------------------------------------
    def auth_state(
        self, state: Mapping[StateKey, str] | None = None
    ) -> dict[StateKey, Event]:
        source = self.state if state is None else state
        return {k: self.events[v] for k, v in source.items()}

    def lookup(self, event_id: str) -> Event | None:
        return self.events.get(event_id)


def users_without_creators(
    rv: RoomVersion, users: Mapping[str, int], *creators: str
) -> dict[str, int]:
    """Since v12 creators must not appear in power levels `users`."""
    if not rv.privileged_creators:
        return dict(users)
    return {u: lvl for u, lvl in users.items() if u not in creators}


def standard_room(rv: RoomVersion, *, join_rule: str = "public") -> Room:
    """Alice creates; PL: alice 100 (creator), bob 50; bob and charlie joined."""
    room = Room(rv)
    room.member("IMA", ALICE, ALICE, "join")
    room.power_levels(
        "IPOWER",
        ALICE,
        {"users": users_without_creators(rv, {ALICE: 100, BOB: 50}, ALICE)},
    )
    room.join_rules("IJR", ALICE, join_rule)
    for name, user in (("IMB", BOB), ("IMC", CHARLIE)):
        if join_rule != "public":
            room.member(f"INV{name}", ALICE, user, "invite")
        room.member(name, user, user, "join")
    return room


def versions(
    predicate: Callable[[RoomVersion], bool] | None = None,
) -> pytest.MarkDecorator:
    """pytest parametrization over room versions (optionally those matching a predicate)."""
    chosen = [rv for rv in ALL_VERSIONS if predicate is None or predicate(rv)]
    return pytest.mark.parametrize(
        "rv", chosen, ids=[f"v{rv.identifier}" for rv in chosen]
    )


def check(
    room: Room, event: Event, verify: ThirdPartyInviteVerifier | None = None
) -> None:
    """Run both halves of the auth rules: against the event's own auth events, then
    against the room's current state."""
    check_state_independent_auth_rules(event, room.events, room.create)
    check_state_dependent_auth_rules(
        event, room.auth_state(), verify_third_party_invite=verify
    )
