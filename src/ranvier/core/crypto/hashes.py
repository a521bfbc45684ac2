"""Event content hashes and reference hashes (spec: S-S API > Signing Events).

* Content hash: SHA-256 of the canonical JSON of the PDU without `unsigned`,
  `signatures` and `hashes`; stored as unpadded base64 in `hashes.sha256`. It covers the
  full content, so a mismatch means the event was tampered with or redacted in transit:
  the receiver then uses the redacted form (S-S API > Checks performed on receipt of a
  PDU, step 3).
* Reference hash: SHA-256 of the canonical JSON of the *redacted* PDU without
  `signatures` and `unsigned`. Event IDs of room v3+ and v12 room IDs are built from it.

Canonical JSON is strict from room v6 (`RoomVersion.strict_canonicaljson`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from ranvier.core.crypto.base64 import encode_base64
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.json import encode_canonical_json
from ranvier.core.room_versions import RoomVersion

__all__ = [
    "check_content_hash",
    "compute_content_hash",
    "compute_reference_hash",
    "reference_hash_bytes",
]

_NOT_IN_CONTENT_HASH: Final = frozenset({"unsigned", "signatures", "hashes"})
_NOT_IN_REFERENCE_HASH: Final = frozenset({"signatures", "unsigned"})


def compute_content_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The unpadded-base64 SHA-256 content hash, the value of `hashes.sha256`."""
    body = {k: v for k, v in pdu.items() if k not in _NOT_IN_CONTENT_HASH}
    data = encode_canonical_json(body, strict=room_version.strict_canonicaljson)
    return encode_base64(hashlib.sha256(data).digest())


def check_content_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bool:
    """True if `hashes.sha256` is present and matches the PDU's content hash.

    False for a missing, malformed or wrong hash; the caller then redacts the event
    (it is not rejected: the signature covers only the redacted form).
    """
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    expected = hashes.get("sha256")
    if not isinstance(expected, str):
        return False
    # Base64 is compared after stripping any padding a sender may have added.
    actual = compute_content_hash(pdu, room_version)
    return hmac.compare_digest(actual, expected.rstrip("="))


def reference_hash_bytes(
    redacted_pdu: Mapping[str, Any], room_version: RoomVersion
) -> bytes:
    """The bytes the reference hash is computed over, given an already-redacted PDU.

    These are also exactly the bytes an event signature covers (signing removes
    `signatures` and `unsigned` from the redacted PDU too), which lets the event builder
    sign and compute the event ID from one encoding.
    """
    body = {k: v for k, v in redacted_pdu.items() if k not in _NOT_IN_REFERENCE_HASH}
    return encode_canonical_json(body, strict=room_version.strict_canonicaljson)


def compute_reference_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """The raw 32-byte SHA-256 reference hash of `pdu` (redacted first)."""
    data = reference_hash_bytes(redact_pdu(pdu, room_version), room_version)
    return hashlib.sha256(data).digest()
