"""Pure federation helpers: received-PDU cleaning, served PDUs, templates, countersigning,
server history visibility."""

from __future__ import annotations

from typing import Any

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.event import Event
from ranvier.core.events.federation_format import (
    clean_received_pdu,
    federation_pdu,
    membership_template,
    sign_event,
)
from ranvier.core.events.signatures import verify_event_signatures
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.core.server_visibility import is_event_visible_to_server

V10 = KNOWN_ROOM_VERSIONS["10"]
V1 = KNOWN_ROOM_VERSIONS["1"]
V12 = KNOWN_ROOM_VERSIONS["12"]
KEY = SigningKey.from_seed(b"\x01" * 32, "k")
OTHER = SigningKey.from_seed(b"\x02" * 32, "o")


def _event(**extra: Any) -> Event:
    pdu = {
        "type": "m.room.member",
        "room_id": "!r:a.test",
        "sender": "@u:a.test",
        "state_key": "@u:a.test",
        "content": {"membership": "invite"},
        "origin_server_ts": 1,
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
        **extra,
    }
    return finalize_local_event(pdu, V10, "a.test", KEY)


def test_clean_received_pdu_keeps_only_trusted_unsigned() -> None:
    pdu = {
        "type": "m.room.member",
        "content": {"membership": "invite"},
        "unsigned": {"age": 5, "invite_room_state": [{"type": "x"}, 3],
                     "redacted_because": {}, "transaction_id": "t"},
    }  # fmt: skip
    assert clean_received_pdu(pdu)["unsigned"] == {
        "age": 5,
        "invite_room_state": [{"type": "x"}],
    }
    message = {"type": "m.room.message", "content": {}, "unsigned": {"age": "x"}}
    assert "unsigned" not in clean_received_pdu(message)
    assert "unsigned" in message  # the input is not modified


def test_federation_pdu_drops_local_unsigned_and_redacts() -> None:
    event = _event(unsigned={"transaction_id": "t", "age": 1})
    assert federation_pdu(event)["unsigned"] == {"age": 1}
    redacted = federation_pdu(event, redact=True)
    assert "unsigned" not in redacted
    assert redacted["content"] == {"membership": "invite"}


def test_membership_template_formats() -> None:
    create = finalize_local_event(
        {"type": "m.room.create", "sender": "@u:a.test", "content": {},
         "state_key": "", "origin_server_ts": 1, "depth": 1, "prev_events": [],
         "auth_events": []},
        V12, "a.test", KEY,
    )  # fmt: skip
    t12 = membership_template(
        V12, room_id=create.room_id, user_id="@j:b.test", membership="join",
        origin="a.test", origin_server_ts=5, prev_events=[create],
        auth_events=[create],
    )  # fmt: skip
    assert t12["auth_events"] == []  # v12: the create event is implied
    assert t12["prev_events"] == [create.event_id]
    assert t12["depth"] == 2
    assert "origin" not in t12
    t1 = membership_template(
        V1, room_id="!r:a.test", user_id="@j:b.test", membership="leave",
        origin="a.test", origin_server_ts=5, prev_events=[], auth_events=[],
        extra_content={"reason": "bye"},
    )  # fmt: skip
    assert t1["origin"] == "a.test"
    assert t1["content"] == {"membership": "leave", "reason": "bye"}


def test_sign_event_adds_a_verifiable_signature() -> None:
    event = _event()
    signed = sign_event(event, "b.test", OTHER)
    keys = {("a.test", KEY.key_id): KEY.verify_key, ("b.test", OTHER.key_id):
            OTHER.verify_key}  # fmt: skip
    verify_event_signatures(signed, lambda s, k, _ts: keys.get((s, k)))
    assert set(signed.data["signatures"]) == {"a.test", "b.test"}
    assert signed.event_id == event.event_id
    assert "b.test" not in event.data["signatures"]


def test_server_visibility() -> None:
    assert is_event_visible_to_server("shared", [])
    assert is_event_visible_to_server("world_readable", ["leave"])
    assert not is_event_visible_to_server("joined", ["leave", "invite"])
    assert is_event_visible_to_server("joined", ["leave", "join"])
    assert is_event_visible_to_server("invited", ["invite"])
    assert not is_event_visible_to_server("invited", [])
