"""Errors raised by the crypto helpers; services map them to Matrix error codes."""

from __future__ import annotations

__all__ = ["KeyFormatError", "SignatureError"]


class KeyFormatError(ValueError):
    """A key, key ID or key file line is malformed."""


class SignatureError(Exception):
    """A signature is missing, malformed or does not verify.

    `server_name` and `key_id` say whose signature failed, when known, so that callers
    can report it (and, for events, reject rather than retry with other keys).
    """

    def __init__(
        self, message: str, *, server_name: str | None = None, key_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.server_name = server_name
        self.key_id = key_id
