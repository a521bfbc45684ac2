"""Identifier grammar (spec: Appendices > Identifier Grammar) and vectors/identifiers.json."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.ids import (
    EventID,
    InvalidIdentifierError,
    RoomAlias,
    RoomID,
    UserID,
    domain_of,
    is_valid_localpart,
    is_valid_room_version_id,
    is_valid_server_name,
    map_to_localpart,
    parse_event_id,
    parse_room_alias,
    parse_room_id,
    parse_server_name,
    parse_user_id,
)
from tests.core.spec_vectors import load_vectors

IDENTIFIERS = load_vectors("identifiers.json")
HASH = "jZyx5FzOVRH0lONuNtLjSmhlLskYvpMJwCdMBKmPVTg"


@pytest.mark.parametrize("name", IDENTIFIERS["server_names_valid"]["values"])
def test_spec_server_names(name: str) -> None:
    assert is_valid_server_name(name)
    assert parse_user_id(f"@alice:{name}").domain == name


def test_server_name_parts() -> None:
    assert parse_server_name("matrix.org") == ("matrix.org", None)
    assert parse_server_name("matrix.org:8888") == ("matrix.org", 8888)
    assert parse_server_name("[1234:5678::abcd]:5678") == ("[1234:5678::abcd]", 5678)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:123456",
        "matrix.org:0",
        "matrix.org:65536",
        "exa_mple.org",
        "ex ample.org",
        "[1234:5678::abcd",
        "1234:5678::abcd",
        "[::g]",
        "1.2.3.256",
        "é.org",
        "a" * 256,
    ],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


@pytest.mark.parametrize(
    "version", IDENTIFIERS["room_versions_valid_grammar"]["values"]
)
def test_spec_room_version_grammar(version: str) -> None:
    assert is_valid_room_version_id(version)


@pytest.mark.parametrize("version", ["", "A", "1_2", "v 1", "x" * 33])
def test_invalid_room_version_ids(version: str) -> None:
    assert not is_valid_room_version_id(version)


@pytest.mark.parametrize("case", IDENTIFIERS["user_id_localpart_mapping"]["cases"])
def test_spec_localpart_mapping(case: dict[str, str]) -> None:
    assert map_to_localpart(case["from"]) == case["to"]


@settings(deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_mapped_localparts_are_valid_and_injective(a: str, b: str) -> None:
    mapped = map_to_localpart(a)
    assert mapped == "" or is_valid_localpart(mapped)
    assert (map_to_localpart(b) == mapped) == (a == b)


def test_mapping_escapes_its_escape_characters() -> None:
    assert map_to_localpart("a_b=c") == "a__b=3dc"
    assert map_to_localpart("Ab.-/+9") == "_ab.-/+9"


def test_user_ids() -> None:
    allowed = IDENTIFIERS["user_id_grammar"]["localpart_allowed"].replace(" ", "")
    assert allowed == "a-z0-9._=-/+"
    uid = parse_user_id("@a.b_c=d-e/f+1:example.org:8448")
    assert uid == UserID("a.b_c=d-e/f+1", "example.org:8448")
    assert str(uid) == "@a.b_c=d-e/f+1:example.org:8448"
    assert not uid.is_historical
    # Historical localparts are accepted from remote servers (never created).
    old = parse_user_id("@Alice Ü!:example.org")
    assert old.localpart == "Alice Ü!"
    assert old.is_historical
    assert not is_valid_localpart("Alice")
    at_limit = "@" + "a" * (255 - len("@:x.org")) + ":x.org"
    assert len(at_limit) == 255
    parse_user_id(at_limit)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",
        "@alice",
        "@:example.org",
        "@alice:",
        "@alice:bad_domain",
        "@al\x00ice:example.org",
        "@" + "a" * 250 + ":x.org",
        "@" + "é" * 125 + ":x.org",
    ],
)
def test_invalid_user_ids(user_id: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        parse_user_id(user_id)


def test_room_ids() -> None:
    assert parse_room_id("!abc:example.org") == RoomID("abc", "example.org")
    assert str(parse_room_id("!abc:example.org")) == "!abc:example.org"
    v12 = parse_room_id("!" + HASH)
    assert v12 == RoomID(HASH, None)
    assert str(v12) == "!" + HASH
    for bad in [
        "!short",
        "abc:example.org",
        "!:example.org",
        "!" + HASH + "x",
        "#a:b.c",
    ]:
        with pytest.raises(InvalidIdentifierError):
            parse_room_id(bad)


def test_event_ids() -> None:
    assert parse_event_id("$abc:example.org") == EventID("abc", "example.org")
    assert parse_event_id("$" + HASH) == EventID(HASH, None)
    std = "$" + HASH.replace("-", "+").replace("_", "/")
    assert str(parse_event_id(std)) == std
    for bad in ["$short", "abc", "$:example.org", "$abc:"]:
        with pytest.raises(InvalidIdentifierError):
            parse_event_id(bad)


def test_room_aliases() -> None:
    alias = parse_room_alias("#room:example.org")
    assert alias == RoomAlias("room", "example.org")
    assert str(alias) == "#room:example.org"
    for bad in ["room:example.org", "#:example.org", "#room", "!room:example.org"]:
        with pytest.raises(InvalidIdentifierError):
            parse_room_alias(bad)


def test_domain_of() -> None:
    assert domain_of("@a:example.org:8448") == "example.org:8448"
    assert domain_of("$e:[::1]") == "[::1]"
    with pytest.raises(InvalidIdentifierError):
        domain_of("!" + HASH)
