from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from ranvier.config import values as v
from ranvier.config.values import Context, Invalid


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("512K", 512 << 10),
        ("50M", 50 << 20),
        ("50m", 50 << 20),
        ("50MB", 50 << 20),
        ("50MiB", 50 << 20),
        ("10 M", 10 << 20),
        ("1G", 1 << 30),
        ("2T", 2 << 40),
        ("100B", 100),
    ],
)
def test_size_accepts(raw: object, expected: int, ctx: Context) -> None:
    assert v.size(1)(raw, ctx) == expected


@pytest.mark.parametrize("raw", ["abc", "1.5M", "50X", "M", -1, 0, True, None, [1]])
def test_size_rejects(raw: object, ctx: Context) -> None:
    with pytest.raises(Invalid) as exc:
        v.size(1)(raw, ctx)
    assert "expected a size in bytes >= 1" in str(exc.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3600, 3600),
        ("45", 45),
        ("45s", 45),
        ("30m", 1800),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 14 * 86400),
        ("1y", 365 * 86400),
    ],
)
def test_duration_accepts(raw: object, expected: int, ctx: Context) -> None:
    assert v.duration(1)(raw, ctx) == expected


@pytest.mark.parametrize("raw", ["1h30m", "-5", "h", "1H", False, 0, 1.5])
def test_duration_rejects(raw: object, ctx: Context) -> None:
    with pytest.raises(Invalid) as exc:
        v.duration(1)(raw, ctx)
    assert "expected a duration in seconds >= 1" in str(exc.value)


@pytest.mark.parametrize(
    ("number", "size_text", "duration_text"),
    [
        (50 << 20, "50M", "52428800"),
        (3600, "3600", "1h"),
        (1 << 30, "1G", "1073741824"),
        (7 * 86400, "604800", "1w"),
        (90, "90", "90"),
        (1800, "1800", "30m"),
    ],
)
def test_format_size_and_duration_round_trip(
    number: int, size_text: str, duration_text: str, ctx: Context
) -> None:
    assert str(v.format_size(number)) == size_text
    assert v.size()(v.format_size(number), ctx) == number
    assert str(v.format_duration(number)) == duration_text
    assert v.duration()(v.format_duration(number), ctx) == number


@pytest.mark.parametrize(
    ("name", "host", "port"),
    [
        ("example.com", "example.com", None),
        ("example.com:8448", "example.com", 8448),
        ("localhost", "localhost", None),
        ("matrix-1.example.org", "matrix-1.example.org", None),
        ("1.2.3.4", "1.2.3.4", None),
        ("1.2.3.4:80", "1.2.3.4", 80),
        ("[::1]", "[::1]", None),
        ("[2001:db8::1]:8448", "[2001:db8::1]", 8448),
    ],
)
def test_server_name_valid(
    name: str, host: str, port: int | None, ctx: Context
) -> None:
    assert v.split_server_name(name) == (host, port)
    assert v.server_name(name, ctx) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:123456",
        "example.com:80a",
        "::1",
        "[::1",
        "[zz::1]",
        "[::1]x",
        "http://example.com",
        "exa mple.com",
        "a..b",
        ".example.com",
        "999.1.1.1",
        "under_score.example",
        "x" * 64 + ".example.com",
    ],
)
def test_server_name_invalid(name: str, ctx: Context) -> None:
    with pytest.raises(ValueError, match=re.escape(name) or "^$"):
        v.split_server_name(name)
    with pytest.raises(Invalid) as exc:
        v.server_name(name, ctx)
    assert "expected a server name" in str(exc.value)


def test_server_name_rejects_non_string(ctx: Context) -> None:
    with pytest.raises(Invalid, match=r"got 1\.5"):
        v.server_name(1.5, ctx)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("http://localhost:8008", "http://localhost:8008/"),
        ("https://example.com/matrix", "https://example.com/matrix/"),
    ],
)
def test_base_url_normalises(raw: str, expected: str, ctx: Context) -> None:
    assert v.base_url(raw, ctx) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "example.com",
        "ftp://example.com/",
        "https://example.com/?a=1",
        "https://example.com/#top",
        "https://user@example.com/",
        "https://example.com:99999/",
        "https://example.com:0/",
        "https://",
        42,
    ],
)
def test_base_url_rejects(raw: object, ctx: Context) -> None:
    with pytest.raises(Invalid, match="expected an http:// or https:// URL"):
        v.base_url(raw, ctx)


def test_path_resolves_relative_to_base_dir(ctx: Context) -> None:
    assert v.path("data/../media", ctx) == ctx.base_dir / "media"
    assert v.path("/srv/ranvier", ctx) == Path("/srv/ranvier")
    with pytest.raises(Invalid, match="expected a file system path"):
        v.path("", ctx)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), (False, False), ("true", True), ("Yes", True), ("off", False)],
)
def test_boolean(raw: object, expected: bool, ctx: Context) -> None:
    assert v.boolean(raw, ctx) is expected


@pytest.mark.parametrize("raw", ["maybe", 1, 0, None, "1"])
def test_boolean_rejects(raw: object, ctx: Context) -> None:
    with pytest.raises(Invalid, match="expected true or false"):
        v.boolean(raw, ctx)


def test_integer_bounds_and_strings(ctx: Context) -> None:
    port = v.integer(0, 65535)
    assert port("8008", ctx) == 8008
    assert port(0, ctx) == 0
    for bad in (65536, -1, True, "80.5", 80.0):
        with pytest.raises(Invalid, match="expected an integer between 0 and 65535"):
            port(bad, ctx)
    with pytest.raises(Invalid, match=r"expected an integer >= 1, got 'abc'"):
        v.integer(1)("abc", ctx)


def test_positive_number(ctx: Context) -> None:
    assert v.positive_number()(0.5, ctx) == 0.5
    assert v.positive_number()("2", ctx) == 2.0
    for bad in (0, -1, "nan", "inf", True, "x"):
        with pytest.raises(Invalid, match="expected a number > 0"):
            v.positive_number()(bad, ctx)


def test_one_of_is_case_insensitive_and_hints(ctx: Context) -> None:
    level = v.one_of(("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"))
    engine = v.one_of(("sqlite", "postgres"))
    assert level("debug", ctx) == "DEBUG"
    assert engine("Postgres", ctx) == "postgres"
    with pytest.raises(Invalid) as exc:
        engine("postgresql", ctx)
    assert str(exc.value) == (
        "expected one of 'sqlite', 'postgres', got 'postgresql' (did you mean 'postgres'?)"
    )
    with pytest.raises(Invalid, match="got 5"):
        engine(5, ctx)


def test_room_version(ctx: Context) -> None:
    assert v.room_version(12, ctx) == "12"
    assert v.room_version("10", ctx) == "10"
    for bad in ("13", 13, True, "v12"):
        with pytest.raises(Invalid, match="expected a known room version"):
            v.room_version(bad, ctx)


def test_ip_address_and_network(ctx: Context) -> None:
    assert v.ip_address("::", ctx) == "::"
    assert v.ip_address("0.0.0.0", ctx) == "0.0.0.0"
    with pytest.raises(Invalid, match="expected an IP address"):
        v.ip_address("localhost", ctx)
    assert v.ip_network("10.1.2.3/8", ctx) == ipaddress.ip_network("10.0.0.0/8")
    assert v.ip_network("fe80::1", ctx) == ipaddress.ip_network("fe80::1/128")
    with pytest.raises(Invalid, match="expected an IP address or CIDR range"):
        v.ip_network("10.0.0.0/33", ctx)


def test_list_reports_each_bad_item_and_duplicates(ctx: Context) -> None:
    parse = v.list_of(v.ip_address, min_items=1)
    assert parse(["127.0.0.1", "::1"], ctx) == ("127.0.0.1", "::1")
    with pytest.raises(Invalid) as exc:
        parse(["127.0.0.1", "nope", "127.0.0.1", 5], ctx)
    rendered = [(i.subpath, i.render()) for i in exc.value.issues]
    assert rendered == [
        (
            "[1]",
            "expected an IP address such as '127.0.0.1', '::1' or '0.0.0.0', got 'nope'",
        ),
        ("[2]", "duplicate of [0]"),
        (
            "[3]",
            "expected an IP address such as '127.0.0.1', '::1' or '0.0.0.0', got 5",
        ),
    ]
    with pytest.raises(Invalid, match="expected at least 1 item"):
        parse([], ctx)
    with pytest.raises(Invalid, match=re.escape("expected a list, got '127.0.0.1'")):
        parse("127.0.0.1", ctx)


def test_turn_uri_and_email_sender(ctx: Context) -> None:
    assert (
        v.turn_uri("turns:turn.example.com:5349", ctx) == "turns:turn.example.com:5349"
    )
    for bad in ("https://turn.example.com", "turn:", "turn: x"):
        with pytest.raises(Invalid, match="expected a TURN or STUN URI"):
            v.turn_uri(bad, ctx)
    assert v.email_sender("Ranvier <a@b.c>", ctx) == "Ranvier <a@b.c>"
    with pytest.raises(Invalid, match="expected an e-mail address"):
        v.email_sender("Ranvier", ctx)


def test_describe_and_secret_redaction() -> None:
    assert v.describe(None) == "null"
    assert v.describe(True) == "true"
    assert v.describe({"a": 1}) == "a mapping"
    assert v.describe([1]) == "a list"
    assert v.describe([]) == "an empty list"
    assert v.describe("x" * 100) == repr("x" * 57 + "...")
    issue = v.Issue("a non-empty string", "hunter2")
    assert issue.render() == "expected a non-empty string, got 'hunter2'"
    assert issue.render(secret=True) == "expected a non-empty string, got <redacted>"
