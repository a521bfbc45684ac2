"""Pure third-party identifier helpers (`core/threepid.py`)."""

from __future__ import annotations

import pytest

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import sign_json
from ranvier.core.threepid import (
    lookup_value,
    public_keys_of,
    verify_third_party_signed,
)


def test_lookup_hash_matches_the_spec_example() -> None:
    # Identity Service API > v2 lookup: the example request's first address.
    assert (
        lookup_value("sha256", "alice@example.com", "email", "matrixrocks")
        == "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc"
    )
    assert lookup_value("none", "a@b.c", "email", "p") == "a@b.c email"
    with pytest.raises(ValueError, match="unsupported"):
        lookup_value("md5", "a@b.c", "email", "p")


def test_public_keys_of_merges_the_single_key_and_the_list() -> None:
    content = {
        "public_key": "K1",
        "key_validity_url": "https://is/valid",
        "public_keys": [
            {"public_key": "K1", "key_validity_url": "https://is/valid"},
            {"public_key": "K2"},
            "junk",
            {"key_validity_url": "x"},
        ],
    }
    assert public_keys_of(content) == [("K1", "https://is/valid"), ("K2", None)]
    assert public_keys_of({}) == []


def test_verify_third_party_signed() -> None:
    key = SigningKey.from_seed(b"\x07" * 32, "0")
    signed = sign_json({"mxid": "@a:x", "token": "t"}, "id.example", key)
    assert verify_third_party_signed(signed, key.public_key_base64)
    # URL-safe alphabet is accepted too.
    urlsafe = key.public_key_base64.replace("+", "-").replace("/", "_")
    assert verify_third_party_signed(signed, urlsafe)
    other = SigningKey.from_seed(b"\x08" * 32, "0")
    assert not verify_third_party_signed(signed, other.public_key_base64)
    assert not verify_third_party_signed(
        {**signed, "token": "u"}, key.public_key_base64
    )
    assert not verify_third_party_signed({"mxid": "@a:x"}, key.public_key_base64)
    assert not verify_third_party_signed(signed, "not base64!")
    weird = {**signed, "signatures": {"id.example": {"rsa:0": "x"}, "y": "z"}}
    assert not verify_third_party_signed(weird, key.public_key_base64)
