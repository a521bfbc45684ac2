"""Local state content checks (core/events/state_content.py): good content of every
listed type passes, wrong types and missing required keys are named."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.events.state_content import (
    STATE_CONTENT_FIELDS,
    StateContentError,
    check_state_content,
)

GOOD: dict[str, dict[str, Any]] = {
    "m.room.create": {
        "room_version": "12",
        "m.federate": False,
        "type": "m.space",
        "predecessor": {"room_id": "!old:hs", "event_id": "$tomb"},
        "additional_creators": ["@b:hs"],
    },
    "m.room.join_rules": {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": "!space:hs"}],
    },
    "m.room.history_visibility": {"history_visibility": "world_readable"},
    "m.room.guest_access": {"guest_access": "can_join"},
    "m.room.power_levels": {
        "ban": 50,
        "events": {"m.room.name": 50},
        "events_default": 0,
        "invite": 0,
        "kick": 50,
        "notifications": {"room": 50},
        "redact": 50,
        "state_default": 50,
        "users": {"@a:hs": 100},
        "users_default": 0,
    },
    "m.room.name": {"name": ""},
    "m.room.topic": {
        "topic": "t",
        "m.topic": {"m.text": [{"body": "t", "mimetype": "text/plain"}]},
    },
    "m.room.avatar": {"url": "mxc://hs/x", "info": {"w": 1}},
    "m.room.canonical_alias": {"alias": None, "alt_aliases": ["#a:hs"]},
    "m.room.member": {"membership": "join", "displayname": None, "is_direct": True},
    "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 1},
    "m.room.server_acl": {"allow": ["*"], "deny": [], "allow_ip_literals": False},
    "m.room.pinned_events": {"pinned": ["$e"]},
    "m.room.tombstone": {"body": "moved", "replacement_room": "!new:hs"},
}


def test_every_listed_type_has_a_good_example() -> None:
    assert set(GOOD) == set(STATE_CONTENT_FIELDS)


@pytest.mark.parametrize("event_type", sorted(GOOD))
def test_good_content_passes(event_type: str) -> None:
    check_state_content(event_type, GOOD[event_type])


@pytest.mark.parametrize(
    ("event_type", "content", "message"),
    [
        ("m.room.topic", {"topic": 5}, "'topic' must be a string"),
        ("m.room.topic", {}, "'topic' is required"),
        ("m.room.topic", {"topic": "t", "m.topic": []}, "'m.topic' must be an object"),
        ("m.room.topic", {"topic": "t", "m.topic": {"m.text": "x"}}, "m.text"),
        ("m.room.topic", {"topic": "t", "m.topic": {"m.text": [{}]}}, "'body'"),
        ("m.room.join_rules", {"join_rule": 5}, "'join_rule' must be one of"),
        ("m.room.join_rules", {"join_rule": "public", "allow": [5]}, "'allow'"),
        ("m.room.history_visibility", {"history_visibility": "all"}, "one of"),
        ("m.room.guest_access", {"guest_access": True}, "one of"),
        ("m.room.power_levels", {"ban": "50"}, "'ban' must be an integer"),
        ("m.room.power_levels", {"kick": True}, "'kick' must be an integer"),
        ("m.room.power_levels", {"users": {"alice": 100}}, "'users'"),
        ("m.room.power_levels", {"users": {"@a:hs": 1.5}}, "'users'"),
        ("m.room.power_levels", {"events": {"m.room.name": None}}, "'events'"),
        ("m.room.power_levels", {"notifications": []}, "'notifications'"),
        ("m.room.name", {"name": ["x"]}, "'name' must be a string"),
        ("m.room.avatar", {"url": 1}, "'url' must be a string"),
        ("m.room.canonical_alias", {"alias": 5}, "a string or null"),
        ("m.room.canonical_alias", {"alt_aliases": "#a:hs"}, "'alt_aliases'"),
        ("m.room.member", {"membership": "joined"}, "'membership' must be one of"),
        ("m.room.member", {}, "'membership' is required"),
        ("m.room.member", {"membership": "join", "displayname": 3}, "or null"),
        ("m.room.encryption", {}, "'algorithm' is required"),
        ("m.room.encryption", {"algorithm": "a", "rotation_period_ms": "1"}, "integer"),
        ("m.room.server_acl", {"allow": "*"}, "'allow' must be an array"),
        ("m.room.server_acl", {"allow_ip_literals": "no"}, "a boolean"),
        ("m.room.pinned_events", {"pinned": ["x"]}, "'pinned'"),
        ("m.room.tombstone", {"body": "b"}, "'replacement_room' is required"),
        ("m.room.create", {"m.federate": "no"}, "'m.federate' must be a boolean"),
        ("m.room.create", {"predecessor": {"room_id": 1}}, "predecessor.room_id"),
    ],
)
def test_bad_content_is_named(
    event_type: str, content: dict[str, Any], message: str
) -> None:
    with pytest.raises(StateContentError, match=message):
        check_state_content(event_type, content)


def test_partial_content_skips_required_keys_only() -> None:
    check_state_content("m.room.tombstone", {}, partial=True)
    with pytest.raises(StateContentError):
        check_state_content("m.room.power_levels", {"ban": "x"}, partial=True)


def test_unlisted_types_and_unknown_keys_pass() -> None:
    check_state_content("org.example.custom", {"anything": [1, {"x": None}]})
    check_state_content("m.room.name", {"name": "n", "extra": 5})
