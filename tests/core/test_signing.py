"""JSON signing (spec: Appendices > Signing JSON) against the spec vectors and the
`signedjson` package as an oracle."""

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
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import (
    add_signature,
    compute_json_signature,
    sign_json,
    signature_key_ids,
    verify_json_signature,
)
from ranvier.core.json import CANONICAL_JSON_INT_MAX, CANONICAL_JSON_INT_MIN
from tests.core.spec_vectors import load_vectors

SIGNING = load_vectors("signing.json")
SEED = decode_base64(SIGNING["signing_key_seed_base64"])
KEY = SigningKey.from_seed(SEED, "1")
ORACLE_KEY = signedjson.key.decode_signing_key_base64(
    "ed25519", "1", encode_base64(SEED)
)
ORACLE_VERIFY_KEY = signedjson.key.get_verify_key(ORACLE_KEY)
OTHER_KEY = SigningKey.from_seed(b"\x07" * 32, "2")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(CANONICAL_JSON_INT_MIN, CANONICAL_JSON_INT_MAX)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda c: (
        st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k not in ("signatures", "unsigned")),
    json_values,
    max_size=6,
)


@pytest.mark.parametrize("case", SIGNING["json_signing"], ids=["empty", "one_two"])
def test_spec_vectors(case: dict[str, Any]) -> None:
    signed = sign_json(case["input"], SIGNING["server_name"], KEY)
    assert signed == case["expected"]
    verify_json_signature(case["expected"], "domain", "ed25519:1", KEY.verify_key)


def test_signing_details_illustration_is_not_a_vector() -> None:
    # vectors/README.md: this appendix example does not verify with the key it lists.
    obj = SIGNING["signing_details_illustration"]["object"]
    assert signature_key_ids(obj, "example.org") == ["ed25519:1"]


@settings(deadline=None)
@given(json_objects, st.dictionaries(st.text(max_size=5), json_values, max_size=3))
def test_same_as_oracle_and_verifies(
    obj: dict[str, Any], unsigned: dict[str, Any]
) -> None:
    obj = {**obj, "unsigned": unsigned}
    original = copy.deepcopy(obj)
    signed = sign_json(obj, "domain", KEY)
    assert obj == original, "input must not be modified"
    assert signed == signedjson.sign.sign_json(copy.deepcopy(obj), "domain", ORACLE_KEY)
    assert signed["unsigned"] == unsigned
    verify_json_signature(signed, "domain", "ed25519:1", KEY.verify_key)
    signedjson.sign.verify_signed_json(signed, "domain", ORACLE_VERIFY_KEY)


@settings(deadline=None)
@given(json_objects, st.text(min_size=1, max_size=10))
def test_tampering_fails(obj: dict[str, Any], new_key: str) -> None:
    signed = sign_json(obj, "domain", KEY)
    tampered = {**signed, new_key + "_x": 1}
    with pytest.raises(SignatureError, match="invalid signature from domain") as info:
        verify_json_signature(tampered, "domain", "ed25519:1", KEY.verify_key)
    assert info.value.server_name == "domain"
    # `unsigned` is not covered by the signature.
    verify_json_signature(
        {**signed, "unsigned": {"x": 1}}, "domain", "ed25519:1", KEY.verify_key
    )


def test_wrong_key_fails() -> None:
    signed = sign_json({"a": 1}, "domain", KEY)
    with pytest.raises(SignatureError):
        verify_json_signature(signed, "domain", "ed25519:1", OTHER_KEY.verify_key)


def test_existing_signatures_are_kept() -> None:
    first = sign_json({"a": 1}, "other", OTHER_KEY)
    both = sign_json(first, "domain", KEY)
    assert set(both["signatures"]) == {"other", "domain"}
    verify_json_signature(both, "other", "ed25519:2", OTHER_KEY.verify_key)
    verify_json_signature(both, "domain", "ed25519:1", KEY.verify_key)
    assert set(first["signatures"]) == {"other"}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"a": 1}, "no signatures"),
        ({"signatures": {}}, "not signed by domain"),
        ({"signatures": {"domain": {}}}, "no signature from domain"),
        ({"signatures": {"domain": {"ed25519:1": 5}}}, "no signature from domain"),
        ({"signatures": {"domain": {"ed25519:1": "!!"}}}, "not base64"),
        ({"signatures": {"domain": {"ed25519:1": "AAAA"}}}, "64 bytes"),
        ({"f": 1.5, "signatures": {"domain": {"ed25519:1": "AAAA"}}}, "cannot check"),
    ],
)
def test_verify_errors(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_json_signature(obj, "domain", "ed25519:1", KEY.verify_key)


def test_lenient_signing_allows_floats() -> None:
    signed = sign_json({"f": 1.5}, "domain", KEY, strict=False)
    verify_json_signature(signed, "domain", "ed25519:1", KEY.verify_key, strict=False)
    signedjson.sign.verify_signed_json(signed, "domain", ORACLE_VERIFY_KEY)


def test_add_signature_and_key_ids() -> None:
    sig = compute_json_signature({"a": 1}, KEY)
    out = add_signature({"a": 1}, "domain", "ed25519:1", sig)
    out = add_signature(out, "domain", "curve25519:x", "zzz")
    assert signature_key_ids(out, "domain") == ["ed25519:1"]
    assert signature_key_ids(out, "nobody") == []
    with pytest.raises(SignatureError):
        add_signature({"signatures": []}, "domain", "ed25519:1", sig)
    with pytest.raises(SignatureError):
        add_signature({"signatures": {"domain": 1}}, "domain", "ed25519:1", sig)
