"""Unpadded base64 (spec: Appendices > Unpadded Base64).

Matrix encodes keys, signatures and hashes as RFC 4648 base64 without `=` padding; event
IDs of room v4+ and v12 room IDs use the URL-safe alphabet (RFC 4648 §5). The spec says
decoders SHOULD accept input with or without padding, so decoding accepts both, but each
decoder accepts only its own alphabet and rejects anything else (whitespace, stray
characters, an impossible length).
"""

from __future__ import annotations

import binascii
from typing import Final

__all__ = [
    "Base64Error",
    "decode_base64",
    "decode_urlsafe_base64",
    "encode_base64",
    "encode_urlsafe_base64",
]


class Base64Error(ValueError):
    """Input is not valid (unpadded or padded) base64 in the expected alphabet."""


_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def encode_base64(data: bytes) -> str:
    """Standard alphabet, no padding: `b"foo"` -> `"Zm9v"`, `b"f"` -> `"Zg"`."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def encode_urlsafe_base64(data: bytes) -> str:
    """URL-safe alphabet (`-` and `_` instead of `+` and `/`), no padding."""
    raw = binascii.b2a_base64(data, newline=False).rstrip(b"=")
    return raw.translate(_TO_URLSAFE).decode("ascii")


def decode_base64(value: str | bytes) -> bytes:
    """Decode standard-alphabet base64, with or without padding."""
    return _decode(_ascii(value), value)


def decode_urlsafe_base64(value: str | bytes) -> bytes:
    """Decode URL-safe base64, with or without padding."""
    raw = _ascii(value)
    if b"+" in raw or b"/" in raw:
        raise Base64Error(f"not URL-safe base64: {value!r}")
    return _decode(raw.translate(_FROM_URLSAFE), value)


def _ascii(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise Base64Error(f"not base64 (non-ASCII): {value!r}") from None


def _decode(raw: bytes, original: str | bytes) -> bytes:
    stripped = raw.rstrip(b"=")
    # Padding, when present, must be exactly what RFC 4648 would have written.
    if len(stripped) % 4 == 1 or (len(raw) != len(stripped) and len(raw) % 4):
        raise Base64Error(f"invalid base64 length: {original!r}")
    padded = stripped + b"=" * (-len(stripped) % 4)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        raise Base64Error(f"invalid base64: {original!r}") from None
