"""Small value checks the authorization rules need: user IDs and power level values.

Kept local to `core.auth` so the rules depend on nothing but the event type and the
room version flags.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ranvier.core.room_versions import RoomVersion

# Appendices > Server name: a DNS name, an IPv4 literal or a bracketed IPv6 literal, with
# an optional port.
_SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,255})(?::[0-9]{1,5})?",
)
# v1 "stringy power levels": optional sign then base-10 digits; leading and trailing
# whitespace are stripped first.
_STRINGY_INT = re.compile(r"[+-]?[0-9]+")


def get_domain(user_id: str) -> str:
    """The server name part of a user, room (pre-v12) or v1/v2 event ID."""
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def is_valid_user_id(value: object) -> bool:
    """Appendices > User identifiers, as applied to the `sender` of a PDU.

    Historical localparts (any printable character but `:`) are accepted because
    federation must accept them; the server name must be well formed and the whole ID at
    most 255 bytes.
    """
    if not isinstance(value, str) or not value.startswith("@"):
        return False
    if len(value.encode("utf-8")) > 255:
        return False
    localpart, sep, server_name = value[1:].partition(":")
    if not sep or not localpart:
        return False
    return _SERVER_NAME.fullmatch(server_name) is not None


def is_user_id_like(value: object) -> bool:
    """The looser check Synapse applies to keys of power-levels `users`: `@x:y`."""
    if not isinstance(value, str) or not value.startswith("@"):
        return False
    _localpart, sep, server_name = value[1:].partition(":")
    return bool(sep and server_name)


def parse_power_level(value: Any, room_version: RoomVersion) -> int | None:
    """One power level value as an integer, or None when it is not allowed.

    Since room v10 only JSON integers are allowed. Before, strings holding an integer are
    allowed ("v1 stringy power levels"), and before v6 (no strict canonical JSON) finite
    floats are truncated ("v1 floaty power levels").
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return int(stripped) if _STRINGY_INT.fullmatch(stripped) else None
    if isinstance(value, float) and not room_version.strict_canonicaljson:
        return int(value) if math.isfinite(value) else None
    return None


def read_power_level(value: Any) -> int | None:
    """Read a power level from content that already passed the auth rules.

    Accepted power-levels events only hold values `parse_power_level` allowed for their
    room version, so reading can be lenient and version-independent.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        return int(stripped) if _STRINGY_INT.fullmatch(stripped) else None
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None
