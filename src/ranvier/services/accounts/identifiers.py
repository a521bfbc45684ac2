"""User IDs, localparts, device IDs and secret tokens of local accounts.

Spec: Appendices > Identifier Grammar > User Identifiers. New localparts use only
`a-z 0-9 . _ = - /` and `+`; the whole `@localpart:server_name` is at most 255 bytes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

from ranvier.core.errors import MatrixError

MAX_USER_ID_BYTES = 255
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_DEVICE_ID_ALPHABET = string.ascii_uppercase
DEVICE_ID_LENGTH = 10
# Device IDs clients choose: any printable text, bounded so rows stay small.
MAX_DEVICE_ID_LENGTH = 255


def invalid_username(msg: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", msg)


def user_id_of(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def split_user_id(user_id: str) -> tuple[str, str] | None:
    """(localpart, server_name) of `@localpart:server`, or None if it is not one."""
    if not user_id.startswith("@"):
        return None
    localpart, sep, server = user_id[1:].partition(":")
    if not sep or not localpart or not server:
        return None
    return localpart, server


def check_new_localpart(localpart: str, server_name: str) -> None:
    """Raise M_INVALID_USERNAME unless `localpart` may name a new account."""
    if not localpart:
        raise invalid_username("User ID cannot be empty.")
    if _LOCALPART.fullmatch(localpart) is None:
        raise invalid_username(
            "User ID can only contain characters a-z, 0-9, or '._=-/+'."
        )
    if localpart.isdigit():
        # Purely numeric localparts are how guest accounts are named.
        raise invalid_username("Numeric user IDs are reserved for guest users.")
    if len(user_id_of(localpart, server_name).encode()) > MAX_USER_ID_BYTES:
        raise invalid_username(
            f"User ID may not be longer than {MAX_USER_ID_BYTES} bytes."
        )


def generate_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(DEVICE_ID_LENGTH))


def generate_guest_localpart() -> str:
    # Numeric, like Synapse's guests; collisions are retried by the caller.
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def generate_token(prefix: str) -> str:
    """A 256-bit random secret; the prefix makes leaked tokens recognisable to scanners."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database stores for a token. A fast hash suffices: tokens are random."""
    return hashlib.sha256(token.encode()).hexdigest()
