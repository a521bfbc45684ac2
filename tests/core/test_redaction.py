"""Redaction for every room version (spec: Rooms > vN > Redactions), against
vectors/redaction_rules.json and vectors/derived_events.json."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.events.redaction import redact_content, redact_pdu
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.core.spec_vectors import load_vectors

RULES: dict[str, Any] = load_vectors("redaction_rules.json")["versions"]
DERIVED = load_vectors("derived_events.json")["cases"]
EVENT_TYPES = [
    "m.room.member",
    "m.room.create",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.aliases",
    "m.room.history_visibility",
    "m.room.redaction",
    "m.room.message",
    "m.room.name",
]
CONTENT_KEYS = [
    "membership",
    "join_authorised_via_users_server",
    "third_party_invite",
    "creator",
    "room_version",
    "join_rule",
    "allow",
    "ban",
    "events",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
    "notifications",
    "aliases",
    "history_visibility",
    "redacts",
    "body",
    "name",
]
TOP_LEVEL = sorted(
    {k for v in RULES.values() for k in v["top_level_keys"]}
    | {"unsigned", "redacts", "age_ts", "origin_server_ts", "extra", "outlier"}
)


VERSION_IDS = sorted(RULES.keys(), key=lambda v: (len(v), v))


def test_vectors_cover_every_known_room_version() -> None:
    assert set(RULES) == set(KNOWN_ROOM_VERSIONS)


def _full_event(event_type: str) -> dict[str, Any]:
    pdu: dict[str, Any] = {k: f"v_{k}" for k in TOP_LEVEL}
    pdu["type"] = event_type
    content: dict[str, Any] = {k: f"c_{k}" for k in CONTENT_KEYS}
    content["third_party_invite"] = {"display_name": "x", "signed": {"token": "t"}}
    pdu["content"] = content
    return pdu


def _expected_content(rules: dict[str, Any], event_type: str) -> dict[str, Any]:
    content = _full_event(event_type)["content"]
    spec = rules["content_keys"].get(event_type)
    if spec is None:
        return {}
    if spec["keys"] == "*":
        return dict(content)
    out = {k: content[k] for k in spec["keys"] if k in content}
    for key, nested in spec.get("nested", {}).items():
        out[key] = {n: content[key][n] for n in nested}
    return out


@pytest.mark.parametrize("version", VERSION_IDS)
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_rules_table(version: str, event_type: str) -> None:
    rules = RULES[version]
    room_version = KNOWN_ROOM_VERSIONS[version]
    pdu = _full_event(event_type)
    redacted = redact_pdu(pdu, room_version)
    assert set(redacted) == set(rules["top_level_keys"])
    assert redacted["content"] == _expected_content(rules, event_type)
    for key in rules["top_level_keys"]:
        if key != "content":
            assert redacted[key] == pdu[key]


@pytest.mark.parametrize(
    "case", DERIVED, ids=[f"v{c['room_version']}-{c['name']}" for c in DERIVED]
)
def test_derived_events(case: dict[str, Any]) -> None:
    room_version = KNOWN_ROOM_VERSIONS[case["room_version"]]
    assert redact_pdu(case["signed"], room_version) == case["redacted_signed"]


def test_content_is_always_an_object() -> None:
    rv = KNOWN_ROOM_VERSIONS["11"]
    assert redact_pdu({"type": "m.room.message"}, rv) == {
        "type": "m.room.message",
        "content": {},
    }
    assert redact_pdu({"type": "m.room.create", "content": [1]}, rv)["content"] == {}
    assert redact_content(None, {"a": 1}, rv) == {}


def test_v11_third_party_invite_without_signed_is_dropped() -> None:
    rv = KNOWN_ROOM_VERSIONS["11"]
    for tpi in ({"display_name": "x"}, "not an object"):
        content = {"membership": "invite", "third_party_invite": tpi}
        assert redact_content("m.room.member", content, rv) == {"membership": "invite"}


def test_input_is_not_modified() -> None:
    pdu = _full_event("m.room.member")
    before = repr(pdu)
    redact_pdu(pdu, KNOWN_ROOM_VERSIONS["12"])
    assert repr(pdu) == before


json_leaf = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from([*CONTENT_KEYS, "signed", "x"]), c, max_size=4
        )
    ),
    max_leaves=15,
)
pdus = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES)},
    optional={
        **{k: json_value for k in TOP_LEVEL if k != "type"},
        "content": st.dictionaries(
            st.sampled_from(CONTENT_KEYS), json_value, max_size=8
        ),
    },
)


@settings(deadline=None)
@given(
    pdus,
    st.sampled_from(sorted(KNOWN_ROOM_VERSIONS.values(), key=lambda v: v.identifier)),
)
def test_redaction_is_idempotent(
    pdu: dict[str, Any], room_version: RoomVersion
) -> None:
    once = redact_pdu(pdu, room_version)
    assert redact_pdu(once, room_version) == once
    assert "unsigned" not in once
    assert set(once) <= set(pdu) | {"content"}
