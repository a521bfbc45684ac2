"""PDU structure checks (spec: S-S API > PDUs, Size limits) and `event_from_pdu`."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.events.errors import EventFormatError, EventSizeError
from ranvier.core.events.format import MAX_PDU_BYTES, event_from_pdu, validate_pdu
from ranvier.core.events.ids import compute_event_id
from ranvier.core.json import encode_canonical_json
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from tests.core.spec_vectors import load_vectors

ALL_VERSIONS = sorted(KNOWN_ROOM_VERSIONS.values(), key=lambda v: int(v.identifier))
V = KNOWN_ROOM_VERSIONS
HASH_ID = "$jZyx5FzOVRH0lONuNtLjSmhlLskYvpMJwCdMBKmPVTg"
DERIVED = load_vectors("derived_events.json")["cases"]


def _ref(rv: RoomVersion, event_id: str) -> Any:
    if rv.event_format is EventFormat.V1:
        return [event_id, {"sha256": "AAAA"}]
    return event_id


def make_pdu(rv: RoomVersion, **overrides: Any) -> dict[str, Any]:
    ref_id = "$a:domain" if rv.event_format is EventFormat.V1 else HASH_ID
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@u:domain",
        "room_id": "!r:domain",
        "content": {"body": "hi"},
        "depth": 3,
        "origin_server_ts": 1000,
        "prev_events": [_ref(rv, ref_id)],
        "auth_events": [_ref(rv, ref_id)],
        "hashes": {"sha256": "AAAA"},
        "signatures": {"domain": {"ed25519:1": "AAAA"}},
        "unsigned": {"age": 1},
    }
    if rv.event_format is EventFormat.V1:
        pdu["event_id"] = "$1:domain"
    for key, value in overrides.items():
        if value is _DELETE:
            pdu.pop(key, None)
        else:
            pdu[key] = value
    return pdu


_DELETE: Any = object()


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_valid_pdu(rv: RoomVersion) -> None:
    validate_pdu(make_pdu(rv), rv)
    validate_pdu(make_pdu(rv, state_key="", type="m.room.name"), rv)


@pytest.mark.parametrize(
    "case", DERIVED, ids=lambda c: f"v{c['room_version']}-{c['name']}"
)
def test_derived_events_are_valid(case: dict[str, Any]) -> None:
    rv = KNOWN_ROOM_VERSIONS[case["room_version"]]
    pdu = dict(case["signed"])
    if rv.event_format is not EventFormat.V1 and "event_id" in pdu:
        pdu.pop("event_id")
    event = event_from_pdu(pdu, rv)
    assert event.event_id == compute_event_id(pdu, rv)
    assert event.data is pdu


REQUIRED = [
    "type",
    "sender",
    "content",
    "depth",
    "origin_server_ts",
    "prev_events",
    "auth_events",
    "hashes",
    "signatures",
    "room_id",
]


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
@pytest.mark.parametrize("key", REQUIRED)
def test_missing_required_key(rv: RoomVersion, key: str) -> None:
    with pytest.raises(EventFormatError, match=f"missing required key '{key}'"):
        validate_pdu(make_pdu(rv, **{key: _DELETE}), rv)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"type": 5}, "'type' must be a string, got int"),
        ({"sender": None}, "'sender' must be a string, got null"),
        ({"sender": "u:domain"}, "'sender' is not a user ID"),
        ({"content": []}, "'content' must be an object, got list"),
        ({"depth": "3"}, "'depth' must be an integer, got str"),
        ({"depth": True}, "'depth' must be an integer, got bool"),
        ({"depth": -1}, r"'depth' must be in \[0"),
        ({"origin_server_ts": 1.5}, "'origin_server_ts' must be an integer, got float"),
        ({"state_key": 1}, "'state_key' must be a string, got int"),
        ({"state_key": None}, "'state_key' must be a string, got null"),
        ({"unsigned": []}, "'unsigned' must be an object"),
        ({"room_id": "r:domain"}, "'room_id' must start with '!'"),
        ({"hashes": {}}, "'hashes.sha256' must be a string"),
        ({"hashes": []}, "'hashes' must be an object"),
        ({"signatures": {"domain": "x"}}, "'signatures.domain' must be an object"),
        (
            {"signatures": {"domain": {"k": 1}}},
            "'signatures.domain.k' must be a string",
        ),
        ({"prev_events": {}}, "'prev_events' must be an array, got dict"),
    ],
)
@pytest.mark.parametrize(
    "rv", [V["1"], V["3"], V["6"], V["11"], V["12"]], ids=lambda v: v.identifier
)
def test_bad_fields(rv: RoomVersion, overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventFormatError, match=reason):
        validate_pdu(make_pdu(rv, **overrides), rv)


def test_not_an_object() -> None:
    with pytest.raises(EventFormatError, match="PDU must be an object, got list"):
        validate_pdu([], V["11"])


@pytest.mark.parametrize("rv", [V["1"], V["2"]], ids=lambda v: v.identifier)
def test_v1_format_references_are_pairs(rv: RoomVersion) -> None:
    for bad in (
        ["$a:domain"],
        [["$a:domain"]],
        [["$a:domain", "hash"]],
        [[1, {}]],
        [["a", {}]],
    ):
        with pytest.raises(
            EventFormatError, match=r"'prev_events\[0\]' must be an \[event_id"
        ):
            validate_pdu(make_pdu(rv, prev_events=bad), rv)
    with pytest.raises(EventFormatError, match="missing required key 'event_id'"):
        validate_pdu(make_pdu(rv, event_id=_DELETE), rv)
    with pytest.raises(EventFormatError, match="'event_id' is not an event ID"):
        validate_pdu(make_pdu(rv, event_id="$nodomain"), rv)


@pytest.mark.parametrize("rv", [V["3"], V["4"], V["12"]], ids=lambda v: v.identifier)
def test_v3_format_references_are_ids(rv: RoomVersion) -> None:
    for bad in ([["$a:domain", {}]], [5], ["nosigil"]):
        with pytest.raises(
            EventFormatError, match=r"'auth_events\[0\]' must be an event ID"
        ):
            validate_pdu(make_pdu(rv, auth_events=bad), rv)


@pytest.mark.parametrize("rv", [V["1"], V["10"], V["12"]], ids=lambda v: v.identifier)
def test_reference_count_limits(rv: RoomVersion) -> None:
    ref = make_pdu(rv)["prev_events"][0]
    validate_pdu(make_pdu(rv, prev_events=[ref] * 20, auth_events=[ref] * 10), rv)
    with pytest.raises(
        EventFormatError, match="'prev_events' has 21 entries; at most 20"
    ):
        validate_pdu(make_pdu(rv, prev_events=[ref] * 21), rv)
    with pytest.raises(
        EventFormatError, match="'auth_events' has 11 entries; at most 10"
    ):
        validate_pdu(make_pdu(rv, auth_events=[ref] * 11), rv)


def test_v12_create_event_has_no_room_id() -> None:
    rv = V["12"]
    create = make_pdu(
        rv, type="m.room.create", state_key="", room_id=_DELETE, auth_events=[]
    )
    validate_pdu(create, rv)
    with pytest.raises(EventFormatError, match="must not have 'room_id'"):
        validate_pdu({**create, "room_id": "!r:domain"}, rv)
    with pytest.raises(EventFormatError, match="missing required key 'room_id'"):
        validate_pdu(create, V["11"])


def test_redacts_type_checked_before_v11_only() -> None:
    with pytest.raises(EventFormatError, match="'redacts' must be a string"):
        validate_pdu(make_pdu(V["10"], type="m.room.redaction", redacts=5), V["10"])
    validate_pdu(make_pdu(V["11"], type="m.room.redaction", redacts=5), V["11"])


def test_whole_pdu_size_limit() -> None:
    rv = V["11"]
    pdu = make_pdu(rv, content={"body": ""})
    filler = MAX_PDU_BYTES - len(encode_canonical_json(pdu))
    pdu["content"]["body"] = "x" * filler
    validate_pdu(pdu, rv)
    pdu["content"]["body"] += "x"
    with pytest.raises(EventSizeError, match="65537 bytes") as info:
        validate_pdu(pdu, rv)
    assert not info.value.persist_as_rejected


@pytest.mark.parametrize("key", ["type", "state_key", "sender", "room_id", "event_id"])
def test_key_size_limits(key: str) -> None:
    values = {
        "type": "t" * 255,
        "state_key": "s" * 255,
        "sender": "@" + "u" * 247 + ":domain",
        "room_id": "!" + "r" * 247 + ":domain",
        "event_id": "$" + "e" * 247 + ":domain",
    }
    rv = V["1"] if key == "event_id" else V["11"]
    assert len(values[key]) == 255
    validate_pdu(make_pdu(rv, **{key: values[key]}), rv)
    too_long = values[key][:1] + "x" + values[key][1:]
    with pytest.raises(EventSizeError, match=f"'{key}' is longer than 255") as info:
        validate_pdu(make_pdu(rv, **{key: too_long}), rv)
    assert not info.value.persist_as_rejected


@pytest.mark.parametrize(
    ("rv", "persist"),
    [(V["1"], True), (V["10"], True), (V["11"], False), (V["12"], False)],
)
def test_byte_limits_lenient_before_v11(rv: RoomVersion, persist: bool) -> None:
    # 128 two-byte characters: within 255 code points, over 255 bytes.
    with pytest.raises(
        EventSizeError, match="'state_key' is longer than 255 bytes"
    ) as info:
        validate_pdu(make_pdu(rv, state_key="é" * 128), rv)
    assert info.value.persist_as_rejected is persist


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_canonical_json_strictness(rv: RoomVersion) -> None:
    floaty = make_pdu(rv, content={"ban": 50.0})
    big = make_pdu(rv, content={"n": 2**53})
    if rv.strict_canonicaljson:
        for pdu in (floaty, big):
            with pytest.raises(EventFormatError, match="not canonical JSON"):
                validate_pdu(pdu, rv)
    else:
        validate_pdu(floaty, rv)
        validate_pdu(big, rv)


def test_invalid_strings_rejected() -> None:
    with pytest.raises(EventFormatError, match="not canonical JSON"):
        validate_pdu(make_pdu(V["11"], content={"body": "\ud800"}), V["11"])


@pytest.mark.parametrize("key", ["type", "state_key", "sender"])
def test_nul_in_indexed_keys_rejected(key: str) -> None:
    rv = KNOWN_ROOM_VERSIONS["10"]
    value = {"sender": "@al\x00ice:example.org"}.get(key, "a\x00b")
    fields = {"state_key": "", key: value}
    with pytest.raises(EventFormatError, match="NUL"):
        validate_pdu(make_pdu(rv, **fields), rv)
    # NUL inside content is legal JSON and stored escaped, so it is accepted.
    validate_pdu(make_pdu(rv, content={"body": "a\x00b"}), rv)
