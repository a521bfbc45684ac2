"""Server ACL matching (spec: C-S API > Server Access Control Lists)."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.acl import parse_server_acl, server_is_allowed

CONTENT: dict[str, Any] = {
    "allow": ["*"],
    "deny": ["evil.example", "*.evil.example", "bad?.org"],
    "allow_ip_literals": False,
}


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("good.example", True),
        ("good.example:8448", True),
        ("evil.example", False),
        ("EVIL.example:443", False),
        ("sub.evil.example", False),
        ("bad1.org", False),
        ("bad12.org", True),
        ("1.2.3.4", False),
        ("[::1]:8448", False),
    ],
)
def test_deny_and_ip_literals(server: str, allowed: bool) -> None:
    assert server_is_allowed(server, CONTENT) is allowed


def test_missing_allow_denies_everyone_and_no_acl_allows_all() -> None:
    assert not server_is_allowed("good.example", {"deny": []})
    assert server_is_allowed("good.example", None)


def test_malformed_entries_ignored_and_defaults() -> None:
    acl = parse_server_acl(
        {"allow": ["ok.example", 5, None], "deny": "x", "allow_ip_literals": "no"}
    )
    assert acl.allow == ("ok.example",)
    assert acl.deny == ()
    assert acl.allow_ip_literals is True
    assert acl.is_allowed("1.2.3.4") is False  # not in allow
    assert acl.is_allowed("ok.example")


def test_glob_specials_are_literal() -> None:
    assert not server_is_allowed("aXb", {"allow": ["a.b"]})
    assert server_is_allowed("a.b", {"allow": ["a.b"]})
