"""Identifier grammar (spec: Appendices > Server Name, Common Identifier Format, User
Identifiers, Room IDs, Room Aliases, Event IDs; Rooms > Room version grammar).

Parsing is lenient where the spec says to accept what other servers may create
(historical user-ID localparts, opaque room/event ID localparts) and strict where we
create identifiers ourselves (`is_valid_localpart`, `map_to_localpart`). Every
identifier is limited to 255 bytes of UTF-8, sigil and domain included.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_ID_BYTES",
    "EventID",
    "InvalidIdentifierError",
    "RoomAlias",
    "RoomID",
    "UserID",
    "domain_of",
    "is_valid_localpart",
    "is_valid_room_version_id",
    "is_valid_server_name",
    "map_to_localpart",
    "parse_event_id",
    "parse_room_alias",
    "parse_room_id",
    "parse_server_name",
    "parse_user_id",
]

MAX_ID_BYTES: Final = 255


class InvalidIdentifierError(ValueError):
    """The string does not follow the identifier grammar; the message says why."""


# server_name = hostname [ ":" port ]; hostname = IPv4address / "[" IPv6address "]" /
# dns-name; IPv6address = 2*45IPv6char; dns-name = 1*255dns-char; port = 1*5DIGIT.
_SERVER_NAME_RE: Final = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.\-]{1,255})(?::(?P<port>[0-9]{1,5}))?"
)
_IPV4_LIKE_RE: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_LOCALPART_RE: Final = re.compile(r"[a-z0-9._=\-/+]+")
# v12 room IDs and v3+ event IDs: 32-byte SHA-256 in unpadded base64 is 43 characters.
_HASH_ID_RE: Final = re.compile(r"[A-Za-z0-9+/\-_]{43}")
_ROOM_VERSION_RE: Final = re.compile(r"[a-z0-9.\-]{1,32}")


def parse_server_name(server_name: str) -> tuple[str, int | None]:
    """Split a server name into (host, port); raise if it breaks the grammar."""
    m = _SERVER_NAME_RE.fullmatch(server_name)
    if m is None:
        raise InvalidIdentifierError(f"invalid server name {server_name!r}")
    host = m.group("host")
    port_text = m.group("port")
    port = int(port_text) if port_text is not None else None
    if port is not None and not 0 < port <= 65535:
        raise InvalidIdentifierError(f"invalid port in server name {server_name!r}")
    if _IPV4_LIKE_RE.fullmatch(host) and any(int(o) > 255 for o in host.split(".")):
        raise InvalidIdentifierError(
            f"invalid IPv4 address in server name {server_name!r}"
        )
    return host, port


def is_valid_server_name(server_name: str) -> bool:
    try:
        parse_server_name(server_name)
    except InvalidIdentifierError:
        return False
    return True


def is_valid_localpart(localpart: str) -> bool:
    """Localparts we create: non-empty, only `a-z 0-9 . _ = - / +`."""
    return _LOCALPART_RE.fullmatch(localpart) is not None


def is_valid_room_version_id(version: str) -> bool:
    """Room versions: 1-32 characters of `a-z 0-9 . -` (spec: Rooms > Room version grammar)."""
    return _ROOM_VERSION_RE.fullmatch(version) is not None


def _check_length(identifier: str, kind: str) -> None:
    if len(identifier.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidIdentifierError(f"{kind} longer than {MAX_ID_BYTES} bytes")


def _split(identifier: str, sigil: str, kind: str) -> tuple[str, str]:
    """Split `<sigil>localpart:domain`; the domain is everything after the first `:`."""
    if not identifier.startswith(sigil):
        raise InvalidIdentifierError(
            f"{kind} must start with {sigil!r}: {identifier!r}"
        )
    _check_length(identifier, kind)
    localpart, sep, domain = identifier[1:].partition(":")
    if not sep:
        raise InvalidIdentifierError(f"{kind} has no ':domain' part: {identifier!r}")
    if not is_valid_server_name(domain):
        raise InvalidIdentifierError(
            f"{kind} has an invalid server name: {identifier!r}"
        )
    return localpart, domain


def _check_historical_localpart(localpart: str, identifier: str, kind: str) -> None:
    # Historical localparts: any non-surrogate code point except ':' and NUL.
    if not localpart:
        raise InvalidIdentifierError(f"{kind} has an empty localpart: {identifier!r}")
    if "\x00" in localpart or any(0xD800 <= ord(c) <= 0xDFFF for c in localpart):
        raise InvalidIdentifierError(
            f"{kind} localpart has NUL or surrogates: {identifier!r}"
        )


@dataclass(frozen=True, slots=True)
class UserID:
    localpart: str
    domain: str

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.domain}"

    @property
    def is_historical(self) -> bool:
        """True if the localpart uses characters we would not allow at registration."""
        return not is_valid_localpart(self.localpart)


# Senders repeat across events and parsing is ~20x the cost of a cache hit; the function
# is pure and its result immutable, so memoising is safe.
@functools.lru_cache(maxsize=8192)
def parse_user_id(user_id: str) -> UserID:
    """Parse `@localpart:domain`, accepting historical localparts (spec: User Identifiers:
    servers must accept IDs other servers created before the grammar was tightened)."""
    localpart, domain = _split(user_id, "@", "user ID")
    if not is_valid_localpart(localpart):
        _check_historical_localpart(localpart, user_id, "user ID")
    return UserID(localpart, domain)


@dataclass(frozen=True, slots=True)
class RoomID:
    """`!opaque:domain`, or since room v12 (MSC4291) `!` + 43-char hash and no domain."""

    opaque_id: str
    domain: str | None

    def __str__(self) -> str:
        if self.domain is None:
            return f"!{self.opaque_id}"
        return f"!{self.opaque_id}:{self.domain}"


def parse_room_id(room_id: str) -> RoomID:
    if ":" not in room_id:
        if room_id.startswith("!") and _HASH_ID_RE.fullmatch(room_id[1:]):
            return RoomID(room_id[1:], None)
        raise InvalidIdentifierError(f"invalid room ID {room_id!r}")
    opaque, domain = _split(room_id, "!", "room ID")
    _check_historical_localpart(opaque, room_id, "room ID")
    return RoomID(opaque, domain)


@dataclass(frozen=True, slots=True)
class RoomAlias:
    alias: str
    domain: str

    def __str__(self) -> str:
        return f"#{self.alias}:{self.domain}"


def parse_room_alias(room_alias: str) -> RoomAlias:
    alias, domain = _split(room_alias, "#", "room alias")
    _check_historical_localpart(alias, room_alias, "room alias")
    return RoomAlias(alias, domain)


@dataclass(frozen=True, slots=True)
class EventID:
    """`$opaque:domain` (room v1, v2) or `$` + 43-char reference hash (room v3+)."""

    opaque_id: str
    domain: str | None

    def __str__(self) -> str:
        if self.domain is None:
            return f"${self.opaque_id}"
        return f"${self.opaque_id}:{self.domain}"


def parse_event_id(event_id: str) -> EventID:
    """Parse either event ID form.

    A hash-form ID may itself contain no `:`, so anything with `:` is the v1 form.
    """
    if ":" not in event_id:
        if event_id.startswith("$") and _HASH_ID_RE.fullmatch(event_id[1:]):
            return EventID(event_id[1:], None)
        raise InvalidIdentifierError(f"invalid event ID {event_id!r}")
    opaque, domain = _split(event_id, "$", "event ID")
    _check_historical_localpart(opaque, event_id, "event ID")
    return EventID(opaque, domain)


def domain_of(identifier: str) -> str:
    """The server name of a `@user:domain`, `!room:domain`, `#alias:domain` or
    `$event:domain` identifier (no grammar check beyond having a domain)."""
    _, sep, domain = identifier.partition(":")
    if not sep or not domain:
        raise InvalidIdentifierError(f"identifier has no domain: {identifier!r}")
    return domain


def map_to_localpart(name: str) -> str:
    """Map an arbitrary name to a valid localpart, bijectively (spec: Appendices >
    Mapping from other character sets): `A-Z` -> `_a-z`, `_` -> `__`, other bytes
    outside the allowed set (and `=`) -> `=xx` (lowercase hex of each UTF-8 byte)."""
    out: list[str] = []
    for byte in name.encode("utf-8"):
        c = chr(byte)
        if "A" <= c <= "Z":
            out.append("_" + c.lower())
        elif c == "_":
            out.append("__")
        elif c != "=" and _LOCALPART_RE.fullmatch(c):
            out.append(c)
        else:
            out.append(f"={byte:02x}")
    return "".join(out)
