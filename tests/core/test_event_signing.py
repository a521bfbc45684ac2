"""Local event finalisation and event signature checks (spec: S-S API > Signing Events,
Validating hashes and signatures on received events)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import signedjson.key
import signedjson.sign
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.crypto.base64 import decode_base64, encode_base64
from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.hashes import check_content_hash
from ranvier.core.crypto.keys import SigningKey, VerifyKey
from ranvier.core.crypto.signing import sign_json
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.errors import EventFormatError
from ranvier.core.events.event import Event
from ranvier.core.events.format import event_from_pdu
from ranvier.core.events.ids import compute_event_id
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.events.signatures import (
    required_signature_servers,
    verify_event_signatures,
)
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from tests.core.spec_vectors import load_vectors

ALL_VERSIONS = sorted(KNOWN_ROOM_VERSIONS.values(), key=lambda v: int(v.identifier))
V = KNOWN_ROOM_VERSIONS
SIGNING = load_vectors("signing.json")
DERIVED = load_vectors("derived_events.json")["cases"]
SEED = decode_base64(SIGNING["signing_key_seed_base64"])
KEY = SigningKey.from_seed(SEED, "1")
REMOTE_KEY = SigningKey.from_seed(b"\x42" * 32, "r1")
KEYS: dict[tuple[str, str], VerifyKey] = {
    ("domain", "ed25519:1"): KEY.verify_key,
    ("remote", "ed25519:r1"): REMOTE_KEY.verify_key,
}
HASH_ID = "$jZyx5FzOVRH0lONuNtLjSmhlLskYvpMJwCdMBKmPVTg"


def lookup(server: str, key_id: str, minimum_valid_ts: int) -> VerifyKey | None:
    return KEYS.get((server, key_id))


def unsigned_pdu(rv: RoomVersion, **overrides: Any) -> dict[str, Any]:
    ref_id = "$a:domain" if rv.event_format is EventFormat.V1 else HASH_ID
    ref: Any = (
        [ref_id, {"sha256": "AAAA"}] if rv.event_format is EventFormat.V1 else ref_id
    )
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@u:domain",
        "room_id": "!r:domain",
        "content": {"body": "hi", "msgtype": "m.text"},
        "depth": 3,
        "origin_server_ts": 1_700_000_000_000,
        "prev_events": [ref],
        "auth_events": [ref],
        "unsigned": {"age_ts": 1},
    }
    if rv.event_format is EventFormat.V1:
        pdu["event_id"] = "$1:domain"
    pdu.update(overrides)
    return pdu


@pytest.mark.parametrize(
    "case", DERIVED, ids=lambda c: f"v{c['room_version']}-{c['name']}"
)
def test_finalize_reproduces_derived_vectors(case: dict[str, Any]) -> None:
    rv = KNOWN_ROOM_VERSIONS[case["room_version"]]
    unsigned = {k: v for k, v in case["input"].items() if k != "signatures"}
    event = finalize_local_event(unsigned, rv, "domain", KEY)
    assert event.data == case["signed"]
    if case["event_id"] is not None:
        assert event.event_id == case["event_id"]
    if case.get("room_id"):
        assert event.room_id == case["room_id"]
    verify_event_signatures(event, lookup)


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_finalize_local_event(rv: RoomVersion) -> None:
    unsigned = unsigned_pdu(rv)
    before = copy.deepcopy(unsigned)
    event = finalize_local_event(unsigned, rv, "domain", KEY)
    assert unsigned == before
    assert event.event_id == compute_event_id(event.data, rv)
    assert check_content_hash(event.data, rv)
    assert event.data["unsigned"] == {"age_ts": 1}
    verify_event_signatures(event, lookup)
    # The round trip through federation: the received PDU gives the same event.
    received = event_from_pdu(copy.deepcopy(event.data), rv)
    assert received.event_id == event.event_id
    # signedjson agrees the redacted form is signed.
    oracle_vk = signedjson.key.get_verify_key(
        signedjson.key.decode_signing_key_base64("ed25519", "1", encode_base64(SEED))
    )
    signedjson.sign.verify_signed_json(redact_pdu(event.data, rv), "domain", oracle_vk)


def test_finalize_event_id_rules() -> None:
    with pytest.raises(EventFormatError, match="caller-chosen 'event_id'"):
        finalize_local_event(
            {k: v for k, v in unsigned_pdu(V["1"]).items() if k != "event_id"},
            V["1"],
            "domain",
            KEY,
        )
    with pytest.raises(EventFormatError, match="must not be set"):
        finalize_local_event(
            unsigned_pdu(V["4"], event_id="$x:domain"), V["4"], "domain", KEY
        )


def test_finalize_rejects_invalid_events() -> None:
    with pytest.raises(EventFormatError, match="float"):
        finalize_local_event(
            unsigned_pdu(V["6"], content={"f": 0.5}), V["6"], "domain", KEY
        )
    finalize_local_event(
        unsigned_pdu(V["5"], content={"f": 0.5}), V["5"], "domain", KEY
    )
    with pytest.raises(EventFormatError, match="depth"):
        finalize_local_event(unsigned_pdu(V["11"], depth=-1), V["11"], "domain", KEY)


def test_finalize_keeps_other_servers_signatures() -> None:
    rv = V["11"]
    pdu = unsigned_pdu(rv, signatures={"remote": {"ed25519:r1": "AAAA"}})
    event = finalize_local_event(pdu, rv, "domain", KEY)
    assert set(event.data["signatures"]) == {"remote", "domain"}


# -- required servers ------------------------------------------------------------------


def _event(rv: RoomVersion, **overrides: Any) -> Event:
    return finalize_local_event(unsigned_pdu(rv, **overrides), rv, "domain", KEY)


def test_required_servers_sender() -> None:
    assert required_signature_servers(_event(V["11"])) == {"domain"}


def test_required_servers_v1_event_id_domain() -> None:
    event = _event(V["1"], event_id="$1:remote")
    assert required_signature_servers(event) == {"domain", "remote"}
    with pytest.raises(SignatureError, match="not signed by remote") as info:
        verify_event_signatures(event, lookup)
    assert info.value.server_name == "remote"
    co_signed = finalize_local_event(event.data, V["1"], "remote", REMOTE_KEY)
    verify_event_signatures(co_signed, lookup)


@pytest.mark.parametrize(
    ("rv", "needs_authoriser"), [(V["7"], False), (V["8"], True), (V["12"], True)]
)
def test_required_servers_restricted_join(
    rv: RoomVersion, needs_authoriser: bool
) -> None:
    content = {
        "membership": "join",
        "join_authorised_via_users_server": "@admin:remote",
    }
    event = _event(rv, type="m.room.member", state_key="@u:domain", content=content)
    expected = {"domain", "remote"} if needs_authoriser else {"domain"}
    assert required_signature_servers(event) == expected
    leave = _event(
        rv,
        type="m.room.member",
        state_key="@u:domain",
        content={**content, "membership": "leave"},
    )
    assert required_signature_servers(leave) == {"domain"}


def test_third_party_invite_exempts_sender_server() -> None:
    content = {"membership": "invite", "third_party_invite": {"signed": {}}}
    event = _event(V["11"], type="m.room.member", state_key="@x:other", content=content)
    assert required_signature_servers(event) == set()
    v1_event = _event(
        V["1"],
        type="m.room.member",
        state_key="@x:other",
        content=content,
        event_id="$1:remote",
    )
    assert required_signature_servers(v1_event) == {"remote"}


# -- verification ----------------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_tampering_with_signed_fields_fails(rv: RoomVersion) -> None:
    event = _event(rv)
    for key, value in (("depth", 4), ("sender", "@v:domain"), ("origin_server_ts", 1)):
        tampered = Event({**event.data, key: value}, event.event_id, rv)
        with pytest.raises(SignatureError, match="invalid signature from domain"):
            verify_event_signatures(tampered, lookup)
    # Content outside the redacted form is covered by the content hash, not the signature.
    body_changed = copy.deepcopy(event.data)
    body_changed["content"]["body"] = "changed"
    verify_event_signatures(Event(body_changed, event.event_id, rv), lookup)
    assert not check_content_hash(body_changed, rv)
    # Redacting keeps the signature valid.
    verify_event_signatures(
        Event(redact_pdu(event.data, rv), event.event_id, rv), lookup
    )


def test_unknown_key_fails() -> None:
    event = _event(V["11"])
    with pytest.raises(SignatureError, match="no known valid key of domain"):
        verify_event_signatures(event, lambda s, k, ts: None)


def test_every_known_key_must_verify() -> None:
    event = _event(V["11"])
    other = SigningKey.from_seed(b"\x01" * 32, "2")
    sig = sign_json(redact_pdu(event.data, V["11"]), "domain", other)["signatures"][
        "domain"
    ]
    both = Event(
        {
            **event.data,
            "signatures": {"domain": {**event.data["signatures"]["domain"], **sig}},
        },
        event.event_id,
        V["11"],
    )
    # Only one key known: that is enough.
    verify_event_signatures(both, lookup)
    # A known key whose signature is bad fails the event, even if another is good.
    wrong = {**KEYS, ("domain", "ed25519:2"): REMOTE_KEY.verify_key}
    with pytest.raises(SignatureError, match="ed25519:2") as info:
        verify_event_signatures(both, lambda s, k, ts: wrong.get((s, k)))
    assert info.value.key_id == "ed25519:2"


@pytest.mark.parametrize(
    ("rv", "expected_ts"),
    [(V["4"], 0), (V["5"], 1_700_000_000_000), (V["12"], 1_700_000_000_000)],
)
def test_key_validity_time_passed_to_lookup(rv: RoomVersion, expected_ts: int) -> None:
    seen: list[tuple[str, str, int]] = []

    def recording(server: str, key_id: str, ts: int) -> VerifyKey | None:
        seen.append((server, key_id, ts))
        return KEYS.get((server, key_id))

    verify_event_signatures(_event(rv), recording)
    assert seen == [("domain", "ed25519:1", expected_ts)]


def test_malformed_signature_values() -> None:
    event = _event(V["11"])
    for bad in ("!!!", "AAAA", 5):
        broken = Event(
            {**event.data, "signatures": {"domain": {"ed25519:1": bad}}},
            event.event_id,
            V["11"],
        )
        with pytest.raises(SignatureError, match="invalid signature from domain"):
            verify_event_signatures(broken, lookup)


def test_non_ed25519_signatures_ignored() -> None:
    event = _event(V["11"])
    only_other = Event(
        {**event.data, "signatures": {"domain": {"curve25519:1": "AAAA"}}},
        event.event_id,
        V["11"],
    )
    with pytest.raises(SignatureError, match="not signed by domain"):
        verify_event_signatures(only_other, lookup)


contents = st.dictionaries(
    st.text(max_size=8),
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(max_size=20),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(ALL_VERSIONS),
    st.sampled_from(
        ["m.room.message", "m.room.member", "m.room.create", "m.room.power_levels"]
    ),
    contents,
)
def test_sign_then_verify_property(
    rv: RoomVersion, event_type: str, content: dict[str, Any]
) -> None:
    overrides: dict[str, Any] = {"type": event_type, "content": content}
    if event_type != "m.room.message":
        overrides["state_key"] = ""
    if rv.room_id_from_create_event and event_type == "m.room.create":
        pdu = unsigned_pdu(rv, **overrides)
        del pdu["room_id"]
        event = finalize_local_event(pdu, rv, "domain", KEY)
    else:
        event = finalize_local_event(unsigned_pdu(rv, **overrides), rv, "domain", KEY)
    verify_event_signatures(event, lookup)
    assert check_content_hash(event.data, rv)
    tampered = Event(
        {**event.data, "depth": event.data["depth"] + 1}, event.event_id, rv
    )
    with pytest.raises(SignatureError):
        verify_event_signatures(tampered, lookup)
