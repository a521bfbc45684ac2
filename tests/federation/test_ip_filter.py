"""The outbound IP-range policy with the configured defaults."""

from __future__ import annotations

import ipaddress

import pytest

from ranvier.config.schema import DEFAULT_IP_RANGE_BLOCKLIST
from ranvier.federation.ip_filter import IpRangeFilter

DEFAULT = IpRangeFilter(DEFAULT_IP_RANGE_BLOCKLIST)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "[fd00::5]",
        "0.0.0.0",
        "not an ip",
        "",
    ],
)
def test_default_blocklist_refuses(address: str) -> None:
    assert not DEFAULT.is_allowed(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2a00:1450::1", "[2606:4700::1111]"])
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.is_allowed(address)


def test_allowlist_opens_a_hole_also_for_mapped_form() -> None:
    allow = IpRangeFilter(
        DEFAULT_IP_RANGE_BLOCKLIST, [ipaddress.ip_network("127.0.0.1/32")]
    )
    assert allow.is_allowed("127.0.0.1")
    assert allow.is_allowed("::ffff:127.0.0.1")
    assert not allow.is_allowed("127.0.0.2")
    assert not allow.is_allowed("::1")


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible (deprecated) loopback
        "::10.0.0.1",
    ],
)
def test_ipv4_embedded_in_ipv6_is_judged_as_ipv4(address: str) -> None:
    assert not DEFAULT.is_allowed(address)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_embedded_public_ipv4_passes(address: str) -> None:
    assert DEFAULT.is_allowed(address)
