"""Parsers for single configuration values, and their inverse for sample output.

A parser turns one raw YAML value into a typed value or raises `Invalid` with one or more
`Issue`s; it never sees the key path, which the schema walker in `validate.py` adds. Values
substituted from the environment arrive as strings, so numeric and boolean parsers accept
their string spellings too ("8008", "true").
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS

T = TypeVar("T")

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


# Marks an `Issue` that is a complete sentence rather than "expected X, got Y".
NO_VALUE: Any = _NoValue()


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a value. `subpath` extends the key path, e.g. "[2]"."""

    expected: str
    got: object = NO_VALUE
    subpath: str = ""
    hint: str = ""

    def render(self, *, secret: bool = False) -> str:
        if self.got is NO_VALUE:
            text = self.expected
        else:
            shown = "<redacted>" if secret else describe(self.got)
            text = f"expected {self.expected}, got {shown}"
        return f"{text} ({self.hint})" if self.hint else text


class Invalid(Exception):
    def __init__(self, *issues: Issue) -> None:
        super().__init__("; ".join(i.render() for i in issues))
        self.issues = issues


@dataclass
class Context:
    """What parsers and derived defaults may look at while one config is built.

    `root` and `section` hold the values already parsed at the top level and in the
    section being built, in schema order, so a derived default can depend on earlier keys.
    """

    base_dir: Path
    root: dict[str, object] = field(default_factory=dict)
    section: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """A value parser. `kind` names the accepted type in docs ("integer >= 1")."""

    kind: str
    fn: Callable[[object, Context], T]

    def __call__(self, value: object, ctx: Context) -> T:
        return self.fn(value, ctx)


def describe(value: object) -> str:
    """A short, YAML-flavoured rendering of a bad value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return type(value).__name__


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


# --- scalars -----------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _bound_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" between {minimum} and {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser[int]:
    bounds = _bound_text(minimum, maximum)

    def parse(value: object, ctx: Context) -> int:
        number = _as_int(value)
        too_low = number is not None and minimum is not None and number < minimum
        too_high = number is not None and maximum is not None and number > maximum
        if number is None or too_low or too_high:
            raise Invalid(Issue(f"an integer{bounds}", value))
        return number

    return Parser(f"integer{bounds}", parse)


def positive_number() -> Parser[float]:
    def parse(value: object, ctx: Context) -> float:
        number = _as_float(value)
        if number is None or number <= 0:
            raise Invalid(Issue("a number > 0", value))
        return number

    return Parser("number > 0", parse)


def _parse_bool(value: object, ctx: Context) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise Invalid(Issue("true or false", value))


boolean = Parser("boolean", _parse_bool)


def _parse_string(value: object, ctx: Context) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(Issue("a non-empty string", value))
    return value


string = Parser("string", _parse_string)


def one_of(choices: tuple[str, ...]) -> Parser[str]:
    """One of `choices` (the args of a Literal type), matched case-insensitively."""
    expected = "one of " + ", ".join(repr(c) for c in choices)

    def parse(value: object, ctx: Context) -> str:
        if not isinstance(value, str):
            raise Invalid(Issue(expected, value))
        wanted = value.strip().lower()
        for choice in choices:
            if choice.lower() == wanted:
                return choice
        lowered = [c.lower() for c in choices]
        raise Invalid(Issue(expected, value, hint=did_you_mean(wanted, lowered)))

    return Parser(" | ".join(choices), parse)


# --- sizes and durations -------------------------------------------------------------------

_SIZE_RE = re.compile(r"([0-9]+)\s*([KMGT]?)(I?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION_RE = re.compile(r"([0-9]+)\s*([smhdwy]?)")
_DURATION_UNITS = {
    "": 1,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


def size(minimum: int = 0) -> Parser[int]:
    """Bytes: an integer, or a number with a binary suffix K, M, G or T ("50M" = 50 MiB)."""
    expected = f"a size in bytes >= {minimum} such as 1048576, '512K' or '50M'"

    def parse(value: object, ctx: Context) -> int:
        number = _as_int(value)
        if number is None and isinstance(value, str):
            match = _SIZE_RE.fullmatch(value.strip())
            if match:
                number = int(match[1]) * _SIZE_UNITS[match[2].upper()]
        if number is None or number < minimum:
            raise Invalid(Issue(expected, value))
        return number

    return Parser("size (bytes, or '512K', '50M', '1G')", parse)


def duration(minimum: int = 0) -> Parser[int]:
    """Seconds: an integer, or a number with a suffix s, m, h, d, w or y ("1h" = 3600)."""
    expected = f"a duration in seconds >= {minimum} such as 3600, '30m' or '1h'"

    def parse(value: object, ctx: Context) -> int:
        number = _as_int(value)
        if number is None and isinstance(value, str):
            match = _DURATION_RE.fullmatch(value.strip())
            if match:
                number = int(match[1]) * _DURATION_UNITS[match[2]]
        if number is None or number < minimum:
            raise Invalid(Issue(expected, value))
        return number

    return Parser("duration (seconds, or '30m', '1h', '7d')", parse)


def _largest_unit(number: int, units: Mapping[str, int]) -> str | int:
    for unit, factor in sorted(units.items(), key=lambda kv: -kv[1]):
        if factor > 1 and number and number % factor == 0:
            return f"{number // factor}{unit}"
    return number


def format_size(number: object) -> object:
    """The shortest exact spelling of a byte count ("50M"), as `size` accepts it."""
    return _largest_unit(number, _SIZE_UNITS) if isinstance(number, int) else number


def format_duration(number: object) -> object:
    """The shortest exact spelling of a number of seconds ("1h")."""
    units = {k: v for k, v in _DURATION_UNITS.items() if k not in ("", "y")}
    return _largest_unit(number, units) if isinstance(number, int) else number


# --- names, addresses, URLs and paths ----------------------------------------------------

_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9-]{1,63}")
_DOTTED_RE = re.compile(r"[0-9.]+")


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return "%" not in host
    if _DOTTED_RE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    return len(host) <= 255 and all(_DNS_LABEL_RE.fullmatch(label) for label in labels)


def split_server_name(name: str) -> tuple[str, int | None]:
    """Split a server name into host and port; ValueError if it breaks the grammar.

    Grammar (spec appendix, "Server Name"): `hostname [":" port]` where hostname is an
    IPv4 literal, a bracketed IPv6 literal or a DNS name of letters, digits, "-" and ".".
    """
    if name.startswith("["):
        end = name.find("]")
        host, rest = (name[: end + 1], name[end + 1 :]) if end > 0 else (name, "")
    else:
        host, colon, port_text = name.partition(":")
        rest = colon + port_text
    port: int | None = None
    if rest:
        if not re.fullmatch(r":[0-9]{1,5}", rest) or not 0 < int(rest[1:]) <= 65535:
            raise ValueError(name)
        port = int(rest[1:])
    if not host or not _valid_host(host):
        raise ValueError(name)
    return host, port


def _parse_server_name(value: object, ctx: Context) -> str:
    if isinstance(value, str):
        try:
            split_server_name(value)
        except ValueError:
            pass
        else:
            return value
    raise Invalid(
        Issue(
            "a server name: a DNS name, IPv4 address or [IPv6] address with an "
            "optional :port, such as 'example.com' or 'example.com:8448'",
            value,
        )
    )


server_name = Parser("server name", _parse_server_name)


def _parse_ip_address(value: object, ctx: Context) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            pass
    raise Invalid(Issue("an IP address such as '127.0.0.1', '::1' or '0.0.0.0'", value))


ip_address = Parser("IP address", _parse_ip_address)


def _parse_ip_network(value: object, ctx: Context) -> IPNetwork:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            pass
    raise Invalid(Issue("an IP address or CIDR range such as '10.0.0.0/8'", value))


ip_network = Parser("CIDR range", _parse_ip_network)


def _parse_base_url(value: object, ctx: Context) -> str:
    expected = "an http:// or https:// URL without query or fragment"
    if not isinstance(value, str):
        raise Invalid(Issue(expected, value))
    try:
        parts = urlsplit(value.strip())
        valid_port = parts.port is None or parts.port > 0
    except ValueError:
        raise Invalid(Issue(expected, value)) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not valid_port
    ):
        raise Invalid(Issue(expected, value))
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


base_url = Parser("URL", _parse_base_url)


def _parse_service_url(value: object, ctx: Context) -> str:
    # Handed to clients that append their own path ("…/sfu/get"): no trailing slash.
    return _parse_base_url(value, ctx).rstrip("/")


service_url = Parser("URL", _parse_service_url)


def _parse_web_url(value: object, ctx: Context) -> str:
    expected = "an http:// or https:// URL"
    if not isinstance(value, str):
        raise Invalid(Issue(expected, value))
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        raise Invalid(Issue(expected, value)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(Issue(expected, value))
    return value.strip()


web_url = Parser("URL", _parse_web_url)


# --- support contacts (/.well-known/matrix/support) --------------------------------------

_CONTACT_KEYS = ("role", "matrix_id", "email_address")
_NAMESPACED_ROLE_RE = re.compile(r"[a-z0-9_.-]+\.[a-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class SupportContact:
    """One entry of `support.contacts` (spec v1.10: Server Discovery > support)."""

    role: str
    matrix_id: str | None = None
    email_address: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"role": self.role}
        if self.matrix_id is not None:
            out["matrix_id"] = self.matrix_id
        if self.email_address is not None:
            out["email_address"] = self.email_address
        return out


def _parse_support_contact(value: object, ctx: Context) -> SupportContact:
    expected = (
        "a mapping with role (m.role.admin, m.role.security or a namespaced role) "
        "and matrix_id and/or email_address"
    )
    if not isinstance(value, Mapping) or set(value) - set(_CONTACT_KEYS):
        raise Invalid(Issue(expected, value))
    role, matrix_id, email = (value.get(k) for k in _CONTACT_KEYS)
    if not isinstance(role, str) or not _NAMESPACED_ROLE_RE.fullmatch(role):
        raise Invalid(Issue(expected, value, ".role"))
    if matrix_id is None and email is None:
        raise Invalid(Issue(expected, value))
    if matrix_id is not None and not (
        isinstance(matrix_id, str) and re.fullmatch(r"@[^:\s]+:[^\s]+", matrix_id)
    ):
        raise Invalid(
            Issue(
                "a Matrix user ID such as '@admin:example.com'", matrix_id, ".matrix_id"
            )
        )
    if email is not None and not (
        isinstance(email, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", email)
    ):
        raise Invalid(Issue("an e-mail address", email, ".email_address"))
    return SupportContact(role, matrix_id, email)


support_contact = Parser("support contact", _parse_support_contact)


def dump_support_contacts(value: object) -> object:
    assert isinstance(value, tuple)
    return [c.to_json() for c in value]


def _parse_path(value: object, ctx: Context) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(Issue("a file system path", value))
    path = Path(value)
    if not path.is_absolute():
        path = ctx.base_dir / path
    return Path(os.path.normpath(path))


path = Parser("path", _parse_path)


def _parse_turn_uri(value: object, ctx: Context) -> str:
    if isinstance(value, str) and re.fullmatch(r"(turns?|stuns?):[^\s/][^\s]*", value):
        return value
    raise Invalid(
        Issue(
            "a TURN or STUN URI such as 'turn:turn.example.com:3478?transport=udp'",
            value,
        )
    )


turn_uri = Parser("TURN/STUN URI", _parse_turn_uri)


def _parse_email_sender(value: object, ctx: Context) -> str:
    if isinstance(value, str) and re.search(r"[^\s@<]@[^\s@>]", value):
        return value
    raise Invalid(
        Issue("an e-mail address such as 'Ranvier <noreply@example.com>'", value)
    )


email_sender = Parser("e-mail address", _parse_email_sender)


def _parse_room_version(value: object, ctx: Context) -> str:
    # YAML reads `12` as an integer; room versions are strings in the protocol.
    text = (
        str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    )
    if isinstance(text, str) and text in KNOWN_ROOM_VERSIONS:
        return text
    known = ", ".join(repr(v) for v in KNOWN_ROOM_VERSIONS)
    raise Invalid(Issue(f"a known room version ({known})", value))


room_version = Parser("room version", _parse_room_version)


# --- lists ---------------------------------------------------------------------------------


def _parse_items(
    item: Parser[T], value: object, ctx: Context, min_items: int
) -> list[T]:
    if not isinstance(value, list):
        raise Invalid(Issue("a list", value))
    if len(value) < min_items:
        raise Invalid(Issue(f"expected at least {min_items} item(s), got {len(value)}"))
    parsed: list[T] = []
    issues: list[Issue] = []
    for index, raw in enumerate(value):
        try:
            parsed.append(item(raw, ctx))
        except Invalid as exc:
            issues.extend(
                Issue(i.expected, i.got, f"[{index}]{i.subpath}", i.hint)
                for i in exc.issues
            )
            continue
        if parsed[-1] in parsed[:-1]:
            first = parsed.index(parsed[-1])
            issues.append(Issue(f"duplicate of [{first}]", subpath=f"[{index}]"))
    if issues:
        raise Invalid(*issues)
    return parsed


def list_of(item: Parser[T], *, min_items: int = 0) -> Parser[tuple[T, ...]]:
    """A YAML list of distinct values; the result is a tuple in the given order."""

    def parse(value: object, ctx: Context) -> tuple[T, ...]:
        return tuple(_parse_items(item, value, ctx, min_items))

    return Parser(f"list of {item.kind}", parse)


def set_of(item: Parser[T], *, min_items: int = 0) -> Parser[frozenset[T]]:
    def parse(value: object, ctx: Context) -> frozenset[T]:
        return frozenset(_parse_items(item, value, ctx, min_items))

    return Parser(f"list of {item.kind}", parse)
