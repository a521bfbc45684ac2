"""Checks of end-to-end encryption keys (spec: C-S API > End-to-End Encryption > Device
keys, Cross-signing). Pure: the caller passes the objects and the keys to check with.

* Device keys uploaded by a device must name their owner and that device and carry
  `algorithms`, `keys` and `signatures`; their self-signature is NOT checked on /keys/upload
  (as Synapse, and SyTest uploads placeholder keys). This is safe: only the device itself
  can upload its keys, and every client verifies the `ed25519:<device_id>` self-signature
  on /keys/query before trusting a device (matrix-js-sdk, matrix-rust-sdk drop devices
  that fail it), so an unverifiable upload only hides that device from its peers.
  `check_device_keys(..., verify_self_signature=True)` still checks it where the server
  must vouch for the keys itself (dehydrated devices).
* A cross-signing key names its owner, its `usage`, and exactly one ed25519 public key
  whose key ID is `ed25519:<unpadded base64 public key>`.
* `signed_content` strips `signatures` and `unsigned`: two uploads of the same key are
  the same key whatever signatures they carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.crypto.base64 import Base64Error, decode_base64
from ranvier.core.crypto.errors import KeyFormatError, SignatureError
from ranvier.core.crypto.keys import ED25519, VerifyKey
from ranvier.core.crypto.signing import verify_json_signature

__all__ = [
    "MASTER",
    "SELF_SIGNING",
    "USER_SIGNING",
    "CrossSigningKey",
    "E2eKeyError",
    "check_device_keys",
    "ed25519_verify_key",
    "parse_cross_signing_key",
    "signature_of",
    "signed_content",
    "verify_signed_by",
]

MASTER: Final = "master"
SELF_SIGNING: Final = "self_signing"
USER_SIGNING: Final = "user_signing"
_UNSIGNED_KEYS: Final = frozenset({"signatures", "unsigned"})


class E2eKeyError(ValueError):
    """A key object is malformed or its signature does not check out."""

    def __init__(
        self, message: str, *, bad_signature: bool = False, malformed: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bad_signature = bad_signature
        # A required field is missing or has the wrong JSON type (M_BAD_JSON).
        self.malformed = malformed


def signed_content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` without `signatures` and `unsigned`: what a signature covers."""
    return {k: v for k, v in obj.items() if k not in _UNSIGNED_KEYS}


def ed25519_verify_key(key_id: str, public_key_b64: Any) -> VerifyKey:
    """The VerifyKey for an unpadded-base64 ed25519 public key; E2eKeyError if invalid."""
    if not isinstance(public_key_b64, str):
        raise E2eKeyError(f"key {key_id} is not a string")
    try:
        return VerifyKey(key_id, decode_base64(public_key_b64))
    except (Base64Error, KeyFormatError) as e:
        raise E2eKeyError(f"key {key_id} is not an ed25519 public key: {e}") from None


def verify_signed_by(
    obj: Mapping[str, Any], signer_user_id: str, key: VerifyKey
) -> None:
    """Raise E2eKeyError(bad_signature=True) unless `signer_user_id` signed `obj` with
    `key` (signatures are filed under the user ID, spec: Signing JSON)."""
    try:
        verify_json_signature(obj, signer_user_id, key.key_id, key)
    except SignatureError as e:
        raise E2eKeyError(str(e), bad_signature=True) from None


def signature_of(
    obj: Mapping[str, Any], signer_user_id: str, key_id: str
) -> str | None:
    """The signature string `signer_user_id` made with `key_id`, if present."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return None
    by_user = signatures.get(signer_user_id)
    if not isinstance(by_user, Mapping):
        return None
    sig = by_user.get(key_id)
    return sig if isinstance(sig, str) else None


def _check_string_map(value: Any, what: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise E2eKeyError(f"'{what}' must map key IDs to strings", malformed=True)
    return value


def check_device_keys(
    keys: Mapping[str, Any],
    user_id: str,
    device_id: str,
    *,
    verify_self_signature: bool = False,
) -> None:
    """Spec: `device_keys` of /keys/upload (DeviceKeys: `user_id`, `device_id`,
    `algorithms`, `keys`, `signatures` are required). The object must be for `user_id`'s
    `device_id`; with `verify_self_signature` it must also be signed by
    `ed25519:<device_id>`."""
    if keys.get("user_id") != user_id:
        raise E2eKeyError("'user_id' in device_keys does not match the requester")
    if keys.get("device_id") != device_id:
        raise E2eKeyError("'device_id' in device_keys does not match the requester")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(
        isinstance(a, str) for a in algorithms
    ):
        raise E2eKeyError("'algorithms' must be an array of strings", malformed=True)
    key_map = _check_string_map(keys.get("keys"), "keys")
    if not isinstance(keys.get("signatures"), Mapping):
        raise E2eKeyError("'signatures' must be an object", malformed=True)
    if not verify_self_signature:
        return
    key_id = f"{ED25519}:{device_id}"
    if key_id not in key_map:
        raise E2eKeyError(f"device_keys has no {key_id} key")
    verify_signed_by(keys, user_id, ed25519_verify_key(key_id, key_map[key_id]))


@dataclass(frozen=True, slots=True)
class CrossSigningKey:
    """A parsed cross-signing key: `key_id` is `ed25519:<public_key>`."""

    user_id: str
    usage: str
    public_key: str
    content: Mapping[str, Any]

    @property
    def key_id(self) -> str:
        return f"{ED25519}:{self.public_key}"

    def verify_key(self) -> VerifyKey:
        return ed25519_verify_key(self.key_id, self.public_key)

    def verify_signed(self, obj: Mapping[str, Any]) -> None:
        """`obj` carries this key's valid signature (by its owner)."""
        verify_signed_by(obj, self.user_id, self.verify_key())


def parse_cross_signing_key(obj: Any, user_id: str, usage: str) -> CrossSigningKey:
    """Spec: CrossSigningKey. `usage` must be listed; exactly one ed25519 key."""
    if not isinstance(obj, Mapping):
        raise E2eKeyError(f"the {usage} key must be an object")
    if obj.get("user_id") != user_id:
        raise E2eKeyError(f"'user_id' of the {usage} key does not match")
    usages = obj.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise E2eKeyError(f"the {usage} key must list '{usage}' in 'usage'")
    key_map = _check_string_map(obj.get("keys"), "keys")
    if len(key_map) != 1:
        raise E2eKeyError(f"the {usage} key must hold exactly one key")
    ((key_id, public_key),) = key_map.items()
    if key_id != f"{ED25519}:{public_key}":
        raise E2eKeyError(f"the {usage} key's ID must be ed25519:<public key>")
    ed25519_verify_key(key_id, public_key)
    signatures = obj.get("signatures", {})
    if not isinstance(signatures, Mapping):
        raise E2eKeyError("'signatures' must be an object")
    return CrossSigningKey(user_id, usage, public_key, obj)
