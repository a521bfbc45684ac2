"""Pure room helpers: history visibility, createRoom presets, pagination tokens, the
client event format and local PDU assembly."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.client_format import ReplacedState, client_event
from ranvier.core.events.local_builder import build_unsigned_pdu, reference
from ranvier.core.room_presets import (
    Preset,
    StateEventSpec,
    build_create_content,
    plan_initial_state,
)
from ranvier.core.room_tokens import InvalidRoomTokenError, RoomToken, parse_room_token
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.core.visibility import history_visibility_of, is_event_visible

KEY = SigningKey(b"\x03" * 32, "k")
U = "@u:hs"


def visible(
    *,
    hv: str,
    membership: str | None,
    peeking: bool = False,
    etype: str = "m.room.message",
    state_key: str | None = None,
    content: dict[str, Any] | None = None,
    prev: dict[str, Any] | None = None,
) -> bool:
    return is_event_visible(
        user_id=U,
        event_type=etype,
        state_key=state_key,
        content=content or {},
        prev_content=prev,
        history_visibility=hv,
        membership=membership,
        is_peeking=peeking,
    )


@pytest.mark.parametrize(
    ("hv", "membership", "peeking", "expected"),
    [
        ("world_readable", None, True, True),
        ("joined", "join", False, True),
        ("joined", "invite", False, False),
        ("joined", None, False, False),
        ("invited", "invite", False, True),
        ("invited", None, False, False),
        ("shared", None, False, True),
        ("shared", None, True, False),
        ("shared", "leave", True, False),
    ],
)
def test_history_visibility_rules(
    hv: str, membership: str | None, peeking: bool, expected: bool
) -> None:
    assert visible(hv=hv, membership=membership, peeking=peeking) is expected


def test_boundary_events_use_the_more_permissive_side() -> None:
    # The user's own join is visible even in a "joined" room where they weren't joined.
    assert visible(
        hv="joined",
        membership="join",
        etype="m.room.member",
        state_key=U,
        content={"membership": "join"},
        prev=None,
    )
    # Their leave is visible: judged with the membership before it.
    assert visible(
        hv="joined",
        membership="leave",
        etype="m.room.member",
        state_key=U,
        content={"membership": "leave"},
        prev={"membership": "join"},
    )
    # A switch from world_readable to joined is still seen by outsiders.
    assert visible(
        hv="joined",
        membership=None,
        peeking=True,
        etype="m.room.history_visibility",
        state_key="",
        content={"history_visibility": "joined"},
        prev={"history_visibility": "world_readable"},
    )
    assert history_visibility_of({"history_visibility": "bogus"}) == "shared"
    assert history_visibility_of(None) == "shared"


def test_presets_follow_the_spec_order() -> None:
    rv = KNOWN_ROOM_VERSIONS["10"]
    plan = plan_initial_state(
        room_version=rv,
        creator="@c:hs",
        preset=Preset.TRUSTED_PRIVATE_CHAT,
        invitees=["@i:hs"],
        canonical_alias="#a:hs",
        name="N",
        topic="T",
        initial_state=[
            StateEventSpec("m.room.name", "", {"name": "overridden"}),
            StateEventSpec(
                "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"}
            ),
            StateEventSpec(
                "m.room.history_visibility", "", {"history_visibility": "joined"}
            ),
        ],
        power_level_content_override={"events_default": 50},
    )
    types = [e.type for e in plan.events]
    assert types == [
        "m.room.power_levels",
        "m.room.canonical_alias",
        "m.room.join_rules",
        "m.room.guest_access",
        "m.room.encryption",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.topic",
    ]
    pl = plan.events[0].content
    assert pl["users"] == {"@c:hs": 100, "@i:hs": 100}
    assert pl["events_default"] == 50
    assert plan.events[2].content == {"join_rule": "invite"}
    assert plan.events[5].content == {"history_visibility": "joined"}
    assert plan.events[6].content == {"name": "N"}


def test_v12_creators_are_not_in_power_levels() -> None:
    rv = KNOWN_ROOM_VERSIONS["12"]
    content = build_create_content(
        room_version=rv,
        creator="@c:hs",
        preset=Preset.TRUSTED_PRIVATE_CHAT,
        invitees=["@i:hs"],
        creation_content={"type": "m.space", "creator": "@x:hs"},
    )
    assert content == {
        "room_version": "12",
        "type": "m.space",
        "additional_creators": ["@i:hs"],
    }
    plan = plan_initial_state(
        room_version=rv,
        creator="@c:hs",
        preset=Preset.PUBLIC_CHAT,
        invitees=[],
        canonical_alias=None,
        name=None,
        topic=None,
        initial_state=[],
        power_level_content_override=None,
    )
    pl = plan.events[0].content
    assert pl["users"] == {}
    assert pl["events"]["m.room.tombstone"] > pl["state_default"]
    assert [e.type for e in plan.events] == [
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
    ]
    v1 = build_create_content(
        room_version=KNOWN_ROOM_VERSIONS["1"],
        creator="@c:hs",
        preset=Preset.PRIVATE_CHAT,
        invitees=[],
        creation_content=None,
    )
    assert v1 == {"room_version": "1", "creator": "@c:hs"}


def test_room_tokens() -> None:
    assert parse_room_token("t5-17") == RoomToken(stream=17, depth=5)
    assert parse_room_token("s42") == RoomToken(stream=42)
    assert parse_room_token("s42_1_2_3_4_5_6") == RoomToken(stream=42)
    assert RoomToken(stream=3, depth=2).encode() == "t2-3"
    assert parse_room_token(RoomToken(stream=-1, depth=4).encode()) == RoomToken(-1, 4)
    for bad in ("", "x1", "t5", "tA-1", "s", "s1x", "t1-" + "9" * 30):
        with pytest.raises(InvalidRoomTokenError):
            parse_room_token(bad)


def _event(rv_id: str, **kw: Any) -> Any:
    rv = KNOWN_ROOM_VERSIONS[rv_id]
    fields: dict[str, Any] = {
        "event_type": "m.room.message",
        "sender": U,
        "content": {"body": "x"},
        "room_id": "!r:hs",
        "origin_server_ts": 1000,
        "prev_events": [],
        "auth_events": [],
    }
    fields.update(kw)
    if rv.is_v1_event_format:
        fields.setdefault("v1_event_id", "$abc:hs")
    return finalize_local_event(build_unsigned_pdu(rv, **fields), rv, "hs", KEY)


def test_client_format_redaction_and_unsigned() -> None:
    ev = _event("11", event_type="m.room.redaction", redacts="$target")
    assert ev.content["redacts"] == "$target"
    out = client_event(ev, now_ms=1500, transaction_id="t1")
    assert out["redacts"] == "$target"
    assert out["unsigned"] == {"age": 500, "transaction_id": "t1"}
    assert out["room_id"] == "!r:hs"
    assert "signatures" not in out
    assert "hashes" not in out

    msg = _event("11")
    redacted = client_event(msg, now_ms=1000, redacted_because={"event_id": "$r"})
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"] == {"event_id": "$r"}
    assert redacted["unsigned"]["redacted_by"] == "$r"  # Synapse's older key
    state = _event("11", event_type="m.room.name", state_key="", content={"name": "b"})
    with_prev = client_event(
        state,
        now_ms=1000,
        include_room_id=False,
        replaced_state=ReplacedState("$old", "@o:hs", {"name": "a"}),
    )
    assert "room_id" not in with_prev
    assert with_prev["state_key"] == ""
    assert with_prev["unsigned"]["prev_content"] == {"name": "a"}
    assert with_prev["unsigned"]["prev_sender"] == "@o:hs"


def test_local_builder_formats() -> None:
    create = _event(
        "1", event_type="m.room.create", state_key="", content={"creator": U}
    )
    ref = reference(create)
    assert ref[0] == create.event_id
    assert "sha256" in ref[1]
    child = _event("1", prev_events=[create], auth_events=[create], v1_event_id="$c:hs")
    assert child.prev_event_ids == [create.event_id]
    assert child.depth == create.depth + 1
    v2 = _event(
        "2", event_type="m.room.redaction", redacts="$t:hs", v1_event_id="$r:hs"
    )
    assert v2.data["redacts"] == "$t:hs"
    v12_create = _event(
        "12", event_type="m.room.create", state_key="", room_id=None, content={}
    )
    assert "room_id" not in v12_create.data
    assert v12_create.room_id == "!" + v12_create.event_id[1:]
    v12 = _event(
        "12",
        room_id=v12_create.room_id,
        prev_events=[v12_create],
        auth_events=[v12_create],
    )
    assert v12.auth_event_ids == []
    with pytest.raises(ValueError, match="event ID"):
        build_unsigned_pdu(
            KNOWN_ROOM_VERSIONS["1"],
            event_type="m.room.message",
            sender=U,
            content={},
            room_id="!r:hs",
            origin_server_ts=1,
            prev_events=[],
            auth_events=[],
        )
