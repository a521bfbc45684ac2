"""Ed25519 server signing keys (spec: S-S API > Server implementation / Retrieving server keys).

Key IDs are `ed25519:<version>` where the version uses only `[a-zA-Z0-9_]`. Keys are
stored one per line as `ed25519 <version> <unpadded base64 seed>`, the format Synapse
(and `signedjson`) read and write, so operators can move a key between servers.

There is no key generation here: core code takes no randomness. The caller passes a
32-byte seed (the app layer uses `os.urandom(32)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import nacl.bindings
import nacl.exceptions

from ranvier.core.crypto.base64 import Base64Error, decode_base64, encode_base64
from ranvier.core.crypto.errors import KeyFormatError, SignatureError

__all__ = [
    "ED25519",
    "SigningKey",
    "VerifyKey",
    "decode_verify_key_base64",
    "is_valid_key_version",
    "read_signing_keys",
    "write_signing_keys",
]

ED25519: Final = "ed25519"
_SEED_BYTES: Final = 32
_PUBLIC_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
_KEY_VERSION_RE: Final = re.compile(r"[a-zA-Z0-9_]+")


def is_valid_key_version(version: str) -> bool:
    """Key versions are non-empty and use only `[a-zA-Z0-9_]` (spec: S-S API > Key IDs)."""
    return _KEY_VERSION_RE.fullmatch(version) is not None


class VerifyKey:
    """An ed25519 public key with the key ID it was published under."""

    __slots__ = ("key_id", "public_key")

    def __init__(self, key_id: str, public_key: bytes) -> None:
        if len(public_key) != _PUBLIC_KEY_BYTES:
            raise KeyFormatError(
                f"ed25519 public key must be 32 bytes, got {len(public_key)}"
            )
        self.key_id = key_id
        self.public_key = bytes(public_key)

    @property
    def public_key_base64(self) -> str:
        return encode_base64(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise `SignatureError` unless `signature` is this key's signature of `message`."""
        if len(signature) != _SIGNATURE_BYTES:
            raise SignatureError(
                f"ed25519 signature must be 64 bytes, got {len(signature)}",
                key_id=self.key_id,
            )
        try:
            nacl.bindings.crypto_sign_open(signature + message, self.public_key)
        except nacl.exceptions.BadSignatureError:
            raise SignatureError("bad signature", key_id=self.key_id) from None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VerifyKey)
            and other.key_id == self.key_id
            and other.public_key == self.public_key
        )

    def __hash__(self) -> int:
        return hash((self.key_id, self.public_key))

    def __repr__(self) -> str:
        return f"<VerifyKey {self.key_id} {self.public_key_base64}>"


class SigningKey:
    """An ed25519 private key with its version; made only from a caller-supplied seed."""

    __slots__ = ("_secret", "_seed", "verify_key", "version")

    def __init__(self, seed: bytes, version: str) -> None:
        if len(seed) != _SEED_BYTES:
            raise KeyFormatError(f"ed25519 seed must be 32 bytes, got {len(seed)}")
        if not is_valid_key_version(version):
            raise KeyFormatError(f"invalid key version {version!r}: use [a-zA-Z0-9_]")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(bytes(seed))
        self._seed = bytes(seed)
        self._secret = secret
        self.version = version
        self.verify_key = VerifyKey(f"{ED25519}:{version}", public)

    @classmethod
    def from_seed(cls, seed: bytes, version: str) -> SigningKey:
        return cls(seed, version)

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    @property
    def seed(self) -> bytes:
        """The 32-byte seed: the whole secret. Only for writing the key file."""
        return self._seed

    @property
    def public_key(self) -> bytes:
        return self.verify_key.public_key

    @property
    def public_key_base64(self) -> str:
        return self.verify_key.public_key_base64

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached ed25519 signature of `message`."""
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:_SIGNATURE_BYTES]

    def __repr__(self) -> str:
        # Never show the seed.
        return f"<SigningKey {self.key_id} public={self.public_key_base64}>"


def decode_verify_key_base64(key_id: str, key_base64: str) -> VerifyKey:
    """Build a `VerifyKey` from a key ID and its unpadded-base64 public key (as published
    in `/_matrix/key/v2/server` `verify_keys`). Only ed25519 is defined by the spec."""
    algorithm, sep, _version = key_id.partition(":")
    if algorithm != ED25519 or not sep:
        raise KeyFormatError(f"unsupported key algorithm in key ID {key_id!r}")
    try:
        return VerifyKey(key_id, decode_base64(key_base64))
    except Base64Error as e:
        raise KeyFormatError(f"bad public key for {key_id}: {e}") from None


def read_signing_keys(text: str) -> list[SigningKey]:
    """Parse a signing key file: lines of `ed25519 <version> <unpadded base64 seed>`.

    Blank lines and `#` comments are ignored (an extension; Synapse writes neither).
    """
    keys: list[SigningKey] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) != 3:
            raise KeyFormatError(
                f"line {lineno}: expected '<algorithm> <version> <base64 seed>'"
            )
        algorithm, version, seed_b64 = parts
        if algorithm != ED25519:
            raise KeyFormatError(f"line {lineno}: unsupported algorithm {algorithm!r}")
        try:
            seed = decode_base64(seed_b64)
        except Base64Error:
            raise KeyFormatError(f"line {lineno}: seed is not base64") from None
        try:
            keys.append(SigningKey(seed, version))
        except KeyFormatError as e:
            raise KeyFormatError(f"line {lineno}: {e}") from None
    return keys


def write_signing_keys(keys: Iterable[SigningKey]) -> str:
    """Serialise keys in the file format `read_signing_keys` (and Synapse) reads."""
    return "".join(f"{ED25519} {k.version} {encode_base64(k.seed)}\n" for k in keys)
