"""Signing JSON objects (spec: Appendices > Signing JSON > Signing Details).

To sign: remove `signatures` and `unsigned`, encode the rest as canonical JSON, sign the
bytes with ed25519, and add the unpadded-base64 signature under
`signatures.<server_name>.<key_id>`; `unsigned` is carried through untouched.
Verification recomputes the same bytes. Events are signed in their redacted form; that
is the event layer's job (`ranvier.core.events.builder` / `.signatures`).

`strict` selects the canonical JSON rules: room v1-v5 events must be signed and checked
with `strict=False`; every other object (keys, requests, v6+ events) uses strict rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ranvier.core.crypto.base64 import Base64Error, decode_base64, encode_base64
from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.keys import ED25519, SigningKey, VerifyKey
from ranvier.core.json import CanonicalJsonError, encode_canonical_json

__all__ = [
    "add_signature",
    "compute_json_signature",
    "sign_json",
    "signature_key_ids",
    "signing_bytes",
    "verify_json_signature",
]

_UNSIGNED_KEYS: Final = frozenset({"signatures", "unsigned"})


def signing_bytes(obj: Mapping[str, Any], *, strict: bool = True) -> bytes:
    """The canonical JSON bytes a signature of `obj` covers."""
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in _UNSIGNED_KEYS}, strict=strict
    )


def compute_json_signature(
    obj: Mapping[str, Any], signing_key: SigningKey, *, strict: bool = True
) -> str:
    """The unpadded-base64 signature of `obj` (without adding it anywhere)."""
    return encode_base64(signing_key.sign(signing_bytes(obj, strict=strict)))


def add_signature(
    obj: Mapping[str, Any], server_name: str, key_id: str, signature: str
) -> dict[str, Any]:
    """A shallow copy of `obj` with `signatures.<server_name>.<key_id>` set.

    Existing signatures (other servers', other keys) are kept; the nested dicts that
    change are copied, so `obj` itself is never modified.
    """
    existing = obj.get("signatures", {})
    if not isinstance(existing, Mapping):
        raise SignatureError("'signatures' is not an object", server_name=server_name)
    signatures = dict(existing)
    server_sigs = signatures.get(server_name, {})
    if not isinstance(server_sigs, Mapping):
        raise SignatureError(
            f"'signatures.{server_name}' is not an object", server_name=server_name
        )
    signatures[server_name] = {**server_sigs, key_id: signature}
    out = dict(obj)
    out["signatures"] = signatures
    return out


def sign_json(
    obj: Mapping[str, Any],
    server_name: str,
    signing_key: SigningKey,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Return a copy of `obj` signed by `server_name` with `signing_key`."""
    signature = compute_json_signature(obj, signing_key, strict=strict)
    return add_signature(obj, server_name, signing_key.key_id, signature)


def signature_key_ids(obj: Mapping[str, Any], server_name: str) -> list[str]:
    """The ed25519 key IDs `server_name` signed `obj` with (unknown algorithms skipped)."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return []
    server_sigs = signatures.get(server_name)
    if not isinstance(server_sigs, Mapping):
        return []
    return [
        k for k in server_sigs if isinstance(k, str) and k.startswith(ED25519 + ":")
    ]


def _get_signature(obj: Mapping[str, Any], server_name: str, key_id: str) -> bytes:
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("object has no signatures", server_name=server_name)
    server_sigs = signatures.get(server_name)
    if not isinstance(server_sigs, Mapping):
        raise SignatureError(
            f"not signed by {server_name}", server_name=server_name, key_id=key_id
        )
    signature_b64 = server_sigs.get(key_id)
    if not isinstance(signature_b64, str):
        raise SignatureError(
            f"no signature from {server_name} with key {key_id}",
            server_name=server_name,
            key_id=key_id,
        )
    try:
        return decode_base64(signature_b64)
    except Base64Error:
        raise SignatureError(
            f"signature from {server_name} ({key_id}) is not base64",
            server_name=server_name,
            key_id=key_id,
        ) from None


def verify_json_signature(
    obj: Mapping[str, Any],
    server_name: str,
    key_id: str,
    verify_key: VerifyKey,
    *,
    strict: bool = True,
) -> None:
    """Raise `SignatureError` unless `obj` carries a valid signature by `server_name`
    with `key_id`, checked with `verify_key`."""
    signature = _get_signature(obj, server_name, key_id)
    try:
        message = signing_bytes(obj, strict=strict)
    except CanonicalJsonError as e:
        raise SignatureError(
            f"cannot check signature from {server_name}: {e}",
            server_name=server_name,
            key_id=key_id,
        ) from None
    try:
        verify_key.verify(message, signature)
    except SignatureError as e:
        raise SignatureError(
            f"invalid signature from {server_name} ({key_id}): {e}",
            server_name=server_name,
            key_id=key_id,
        ) from None
