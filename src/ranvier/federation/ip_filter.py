"""Which addresses outbound federation may connect to (SSRF protection).

Remote parties choose the names we resolve (server names, `.well-known` delegations, SRV
targets, redirects), so every address is checked after DNS resolution, right before the
connection is made: a name that resolves to an internal address is refused however it
was reached (DNS rebinding included). The allowlist punches holes in the blocklist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

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
        candidates = [ip]
        # An IPv4-mapped IPv6 address reaches the IPv4 host: judge both forms.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if any(self._listed(c, self._allowlist) for c in candidates):
            return True
        return not any(self._listed(c, self._blocklist) for c in candidates)
