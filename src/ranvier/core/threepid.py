"""Third-party identifiers and third-party invites, the pure parts.

* Media a homeserver may look up (spec: Appendices > 3PID Types): `email`, `msisdn`.
* The identity server's hashed lookup (spec: Identity Service API > Lookups, v2): the
  `sha256` algorithm hashes `"<address> <medium> <pepper>"` and encodes the digest as
  URL-safe unpadded base64; `none` sends `"<address> <medium>"` in the clear.
* The `signed` block of a third-party invite (spec: Rooms v1+ auth rules, m.room.member
  invite step "if any signature in signed matches any public key in the
  m.room.third_party_invite event, allow"): canonical JSON of `signed` without
  `signatures`, checked with ed25519 against a public key from the invite event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from ranvier.core.crypto.base64 import (
    Base64Error,
    decode_base64,
    decode_urlsafe_base64,
    encode_urlsafe_base64,
)
from ranvier.core.crypto.errors import KeyFormatError, SignatureError
from ranvier.core.crypto.keys import ED25519, VerifyKey
from ranvier.core.crypto.signing import verify_json_signature

__all__ = [
    "LOOKUP_NONE",
    "LOOKUP_SHA256",
    "THREEPID_MEDIA",
    "lookup_value",
    "public_keys_of",
    "verify_third_party_signed",
]

THREEPID_MEDIA: Final = frozenset({"email", "msisdn"})
LOOKUP_SHA256: Final = "sha256"
LOOKUP_NONE: Final = "none"


def lookup_value(algorithm: str, address: str, medium: str, pepper: str) -> str:
    """What `/_matrix/identity/v2/lookup` is asked for under `algorithm`."""
    if algorithm == LOOKUP_SHA256:
        digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
        return encode_urlsafe_base64(digest)
    if algorithm == LOOKUP_NONE:
        return f"{address} {medium}"
    raise ValueError(f"unsupported lookup algorithm {algorithm!r}")


def public_keys_of(content: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(public_key, key_validity_url) pairs of an m.room.third_party_invite's content:
    `public_key` (with the top-level `key_validity_url`) and each of `public_keys`."""
    keys: list[tuple[str, str | None]] = []
    single = content.get("public_key")
    url = content.get("key_validity_url")
    if isinstance(single, str):
        keys.append((single, url if isinstance(url, str) else None))
    many = content.get("public_keys")
    if isinstance(many, list):
        for entry in many:
            if not isinstance(entry, Mapping):
                continue
            key, key_url = entry.get("public_key"), entry.get("key_validity_url")
            if isinstance(key, str) and (key, key_url) not in keys:
                keys.append((key, key_url if isinstance(key_url, str) else None))
    return keys


def _decode_key(public_key: str) -> bytes | None:
    # The spec says unpadded base64; some identity servers publish the URL-safe form.
    for decode in (decode_base64, decode_urlsafe_base64):
        try:
            return decode(public_key)
        except Base64Error:
            continue
    return None


def verify_third_party_signed(signed: Mapping[str, Any], public_key: str) -> bool:
    """True if any ed25519 signature in `signed` verifies with `public_key`."""
    raw = _decode_key(public_key)
    signatures = signed.get("signatures")
    if raw is None or not isinstance(signatures, Mapping):
        return False
    for server, server_sigs in signatures.items():
        if not isinstance(server, str) or not isinstance(server_sigs, Mapping):
            continue
        for key_id in server_sigs:
            if not isinstance(key_id, str) or not key_id.startswith(ED25519 + ":"):
                continue
            try:
                verify_json_signature(signed, server, key_id, VerifyKey(key_id, raw))
            except (KeyFormatError, SignatureError):
                continue
            return True
    return False
