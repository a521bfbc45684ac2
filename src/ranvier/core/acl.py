"""Server ACLs: may a server take part in a room? (spec: C-S API > Server Access Control
Lists; S-S API > Server Access Control Lists).

The room's `m.room.server_acl` state event lists `allow` and `deny` globs (`*` any run
of characters, `?` exactly one) matched against the server name without its port.
A server is denied if it is an IP literal and `allow_ip_literals` is false, or if it
matches a `deny` entry; otherwise it is allowed only if it matches an `allow` entry (a
missing `allow` denies everyone). Matching ignores case, as Synapse does: DNS names are
case-insensitive. Malformed entries (not strings) are ignored.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerAcl", "parse_server_acl", "server_is_allowed"]

SERVER_ACL_TYPE = "m.room.server_acl"


@dataclass(frozen=True, slots=True)
class ServerAcl:
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    allow_ip_literals: bool = True

    def is_allowed(self, server_name: str) -> bool:
        host = _host_of(server_name)
        if not self.allow_ip_literals and _is_ip_literal(host):
            return False
        if any(_glob(d).fullmatch(host) for d in self.deny):
            return False
        return any(_glob(a).fullmatch(host) for a in self.allow)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def parse_server_acl(content: Mapping[str, Any]) -> ServerAcl:
    """The ACL an `m.room.server_acl` content sets (`allow_ip_literals` defaults to true
    when missing or not a boolean)."""
    literals = content.get("allow_ip_literals", True)
    return ServerAcl(
        allow=_strings(content.get("allow")),
        deny=_strings(content.get("deny")),
        allow_ip_literals=literals if isinstance(literals, bool) else True,
    )


def server_is_allowed(server_name: str, acl_content: Mapping[str, Any] | None) -> bool:
    """Whether `server_name` may participate; no ACL event means everyone may."""
    if acl_content is None:
        return True
    return parse_server_acl(acl_content).is_allowed(server_name)


def _host_of(server_name: str) -> str:
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    host, _, _port = server_name.partition(":")
    return host


def _is_ip_literal(host: str) -> bool:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
