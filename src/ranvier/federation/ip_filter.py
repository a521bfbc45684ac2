"""Which addresses outbound federation may connect to (SSRF protection).

Remote parties choose the names we resolve (server names, `.well-known` delegations, SRV
targets, redirects), so every address is checked after DNS resolution, right before the
connection is made: a name that resolves to an internal address is refused however it
was reached (DNS rebinding included). The allowlist punches holes in the blocklist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: str) -> IPAddress | None:
    """An IP address from a literal (brackets and an IPv6 zone index allowed), else None."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address may reach: IPv4-mapped (`::ffff:a.b.c.d`), the
    well-known NAT64 prefix (RFC 6052, `64:ff9b::a.b.c.d`, translated by a NAT64
    gateway), 6to4 (`2002:aabb:ccdd::`, RFC 3056) and the deprecated IPv4-compatible
    form (`::a.b.c.d`). Each is judged too, so `64:ff9b::7f00:1` is loopback."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


class IpRangeFilter:
    def __init__(
        self, blocklist: Iterable[IPNetwork], allowlist: Iterable[IPNetwork] = ()
    ) -> None:
        self._blocklist = tuple(blocklist)
        self._allowlist = tuple(allowlist)

    def _listed(self, ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
        return any(ip.version == n.version and ip in n for n in networks)

    def is_allowed(self, address: str | IPAddress) -> bool:
        ip = parse_ip(address) if isinstance(address, str) else address
        if ip is None:
            return False
        candidates = [ip, *embedded_ipv4(ip)]
        if any(self._listed(c, self._allowlist) for c in candidates):
            return True
        return not any(self._listed(c, self._blocklist) for c in candidates)
