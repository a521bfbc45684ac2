"""Ed25519 keys and the Synapse-compatible key file format."""

from __future__ import annotations

import io

import pytest
import signedjson.key
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.crypto.base64 import decode_base64, encode_base64
from ranvier.core.crypto.errors import KeyFormatError, SignatureError
from ranvier.core.crypto.keys import (
    SigningKey,
    VerifyKey,
    decode_verify_key_base64,
    is_valid_key_version,
    read_signing_keys,
    write_signing_keys,
)
from tests.core.spec_vectors import load_vectors

SIGNING = load_vectors("signing.json")
SPEC_SEED = decode_base64(SIGNING["signing_key_seed_base64"])

seeds = st.binary(min_size=32, max_size=32)
versions = st.from_regex(r"[a-zA-Z0-9_]{1,20}", fullmatch=True)


def test_spec_key() -> None:
    key = SigningKey.from_seed(SPEC_SEED, "1")
    assert key.key_id == SIGNING["key_id"] == "ed25519:1"
    oracle = signedjson.key.decode_signing_key_base64(
        "ed25519", "1", encode_base64(SPEC_SEED)
    )
    oracle_public = signedjson.key.encode_verify_key_base64(
        signedjson.key.get_verify_key(oracle)
    )
    assert key.public_key_base64 == oracle_public
    assert key.verify_key.key_id == "ed25519:1"


@settings(deadline=None)
@given(seeds, versions, st.binary(max_size=200))
def test_sign_matches_oracle_and_verifies(
    seed: bytes, version: str, msg: bytes
) -> None:
    key = SigningKey.from_seed(seed, version)
    oracle = signedjson.key.decode_signing_key_base64(
        "ed25519", version, encode_base64(seed)
    )
    sig = key.sign(msg)
    assert sig == oracle.sign(msg).signature
    key.verify_key.verify(msg, sig)
    with pytest.raises(SignatureError):
        key.verify_key.verify(msg + b"x", sig)
    with pytest.raises(SignatureError):
        key.verify_key.verify(msg, bytes([sig[0] ^ 1]) + sig[1:])


def test_verify_rejects_wrong_length_signature() -> None:
    key = SigningKey.from_seed(SPEC_SEED, "1")
    with pytest.raises(SignatureError, match="64 bytes"):
        key.verify_key.verify(b"m", key.sign(b"m")[:63])


@settings(deadline=None)
@given(st.lists(st.tuples(seeds, versions), min_size=1, max_size=4))
def test_key_file_round_trip_and_synapse_compatible(
    pairs: list[tuple[bytes, str]],
) -> None:
    keys = [SigningKey.from_seed(seed, version) for seed, version in pairs]
    text = write_signing_keys(keys)
    # Synapse reads what we write ...
    oracle_keys = signedjson.key.read_signing_keys(io.StringIO(text))
    assert [k.version for k in oracle_keys] == [k.version for k in keys]
    assert [bytes(k) for k in oracle_keys] == [k.seed for k in keys]
    # ... and we read what Synapse writes.
    out = io.StringIO()
    signedjson.key.write_signing_keys(out, oracle_keys)
    assert out.getvalue() == text
    again = read_signing_keys(out.getvalue())
    assert [(k.key_id, k.seed) for k in again] == [(k.key_id, k.seed) for k in keys]


def test_key_file_ignores_blank_lines_and_comments() -> None:
    line = f"ed25519 a_abcd {encode_base64(SPEC_SEED)}"
    keys = read_signing_keys(f"# ranvier signing key\n\n{line}\n")
    assert [k.key_id for k in keys] == ["ed25519:a_abcd"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ed25519 1", "expected"),
        ("ed25519 1 abc extra", "expected"),
        ("curve25519 1 " + encode_base64(SPEC_SEED), "unsupported algorithm"),
        ("ed25519 1 !!!", "not base64"),
        ("ed25519 1 " + encode_base64(b"short"), "32 bytes"),
        ("ed25519 bad-version " + encode_base64(SPEC_SEED), "invalid key version"),
    ],
)
def test_key_file_errors(text: str, reason: str) -> None:
    with pytest.raises(KeyFormatError, match=reason):
        read_signing_keys(text)


@pytest.mark.parametrize("version", ["", "a:b", "a-b", "é", "a b"])
def test_invalid_versions(version: str) -> None:
    assert not is_valid_key_version(version)
    with pytest.raises(KeyFormatError):
        SigningKey.from_seed(SPEC_SEED, version)


def test_repr_hides_seed() -> None:
    key = SigningKey.from_seed(SPEC_SEED, "1")
    assert encode_base64(SPEC_SEED) not in repr(key)
    assert "ed25519:1" in repr(key)


def test_decode_verify_key() -> None:
    key = SigningKey.from_seed(SPEC_SEED, "1")
    vk = decode_verify_key_base64("ed25519:1", key.public_key_base64)
    assert vk == key.verify_key
    assert hash(vk) == hash(key.verify_key)
    with pytest.raises(KeyFormatError, match="algorithm"):
        decode_verify_key_base64("curve25519:1", key.public_key_base64)
    with pytest.raises(KeyFormatError, match="bad public key"):
        decode_verify_key_base64("ed25519:1", "not base64!")
    with pytest.raises(KeyFormatError, match="32 bytes"):
        VerifyKey("ed25519:1", b"\x00" * 31)
