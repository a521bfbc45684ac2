"""Pure media rules: mxc URIs, content types, Content-Disposition, thumbnail size
choice, federation multipart framing and OpenGraph extraction."""

from __future__ import annotations

import pytest

from ranvier.core.media import (
    ThumbnailSize,
    choose_thumbnail_size,
    content_disposition,
    filename_from_disposition,
    is_inline_content_type,
    is_valid_media_id,
    normalize_content_type,
    parse_mxc,
)
from ranvier.core.multipart import (
    MultipartError,
    boundary_of,
    multipart_head,
    multipart_tail,
    parse_media_multipart,
)
from ranvier.core.opengraph import decode_html, parse_opengraph


def test_parse_mxc() -> None:
    assert parse_mxc("mxc://example.org/abc_DEF-123") == ("example.org", "abc_DEF-123")
    assert parse_mxc("mxc://[::1]:8448/x") == ("[::1]:8448", "x")
    for bad in (
        "https://example.org/abc",
        "mxc://example.org",
        "mxc://example.org/",
        "mxc://exa mple.org/abc",
        "mxc://example.org/a/b",
        "mxc://example.org/a.b",
    ):
        with pytest.raises(ValueError, match="mxc"):
            parse_mxc(bad)
    assert not is_valid_media_id("x" * 256)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("image/PNG", "image/png"),
        ("Text/Plain; charset=UTF-8", "text/plain; charset=UTF-8"),
        ("text/plain;charset=utf-8", "text/plain; charset=utf-8"),
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("png", "application/octet-stream"),
        ("image/png\r\nX-Evil: 1", "application/octet-stream"),
        ("image/pngé", "application/octet-stream"),
        ("a/" + "b" * 300, "application/octet-stream"),
    ],
)
def test_normalize_content_type(raw: str | None, expected: str) -> None:
    assert normalize_content_type(raw) == expected


def test_content_disposition() -> None:
    assert content_disposition("image/png", "cat.png") == 'inline; filename="cat.png"'
    assert content_disposition("text/plain; charset=utf-8", None) == "inline"
    assert content_disposition("text/html", "x.html") == 'attachment; filename="x.html"'
    assert content_disposition("image/svg+xml", None) == "attachment"
    assert content_disposition("image/svg+xml", None, force_inline=True) == "inline"
    # Quotes, non-ASCII and control characters cannot break out of the header.
    assert content_disposition("image/png", 'a"b.png') == (
        "inline; filename*=utf-8''a%22b.png"
    )
    assert content_disposition("image/png", "ü.png") == (
        "inline; filename*=utf-8''%C3%BC.png"
    )
    assert content_disposition("image/png", "a\r\nb/c.png") == (
        'inline; filename="abc.png"'
    )
    assert content_disposition("image/png", "\n") == "inline"
    assert is_inline_content_type("VIDEO/MP4")
    assert not is_inline_content_type("application/pdf")


def test_filename_from_disposition() -> None:
    assert filename_from_disposition('inline; filename="a b.png"') == "a b.png"
    assert filename_from_disposition("attachment; filename=x.txt") == "x.txt"
    assert (
        filename_from_disposition(
            "attachment; filename=\"fallback\"; filename*=UTF-8''caf%C3%A9"
        )
        == "café"
    )
    assert filename_from_disposition("inline") is None
    assert filename_from_disposition(None) is None


def test_choose_thumbnail_size() -> None:
    assert choose_thumbnail_size(32, 32, "crop") == ThumbnailSize(32, 32, "crop")
    assert choose_thumbnail_size(1, 1, "crop") == ThumbnailSize(32, 32, "crop")
    assert choose_thumbnail_size(50, 40, "crop") == ThumbnailSize(96, 96, "crop")
    # No crop covers 200x200: the smallest size of any method that does.
    assert choose_thumbnail_size(200, 200, "crop") == ThumbnailSize(320, 240, "scale")
    assert choose_thumbnail_size(10, 10, "scale") == ThumbnailSize(320, 240, "scale")
    assert choose_thumbnail_size(641, 100, "scale") == ThumbnailSize(800, 600, "scale")
    assert choose_thumbnail_size(5000, 5000, "crop") == ThumbnailSize(800, 600, "scale")


def test_multipart_round_trip() -> None:
    body = b"\x00binary\r\n--not-the-boundary\r\n"
    head = multipart_head("XyZ", {"Content-Type": "image/png"})
    framed = head + body + multipart_tail("XyZ")
    part = parse_media_multipart(framed, boundary_of("multipart/mixed; boundary=XyZ"))
    assert part.body == body
    assert part.content_type == "image/png"
    assert part.location is None

    redirect = multipart_head("b", {"Location": "https://cdn/x"}) + multipart_tail("b")
    assert parse_media_multipart(redirect, "b").location == "https://cdn/x"
    # The Location form as some servers write it: no blank line before the delimiter.
    compact = b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nLocation: https://cdn/y\r\n\r\n--b--\r\n"
    assert parse_media_multipart(compact, "b").location == "https://cdn/y"
    assert boundary_of('multipart/mixed; boundary="quoted"') == "quoted"


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "multipart/mixed", "text/plain; boundary=x"],
)
def test_boundary_errors(content_type: str | None) -> None:
    with pytest.raises(MultipartError):
        boundary_of(content_type)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no delimiters here",
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n",
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nbroken header\r\n\r\nx\r\n--b--",
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: a/b\r\n\r\nunterminated",
    ],
)
def test_multipart_parse_errors(body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_media_multipart(body, "b")


def test_opengraph() -> None:
    html = """<html><head>
      <meta property="og:title" content=" The title ">
      <meta name="og:description" content="Via name=">
      <meta property="og:image" content="../img/a.png">
      <meta property="og:title" content="second title is ignored">
      <meta name="description" content="plain description">
      <title>Page title</title>
    </head><body><meta property="og:late" content="after head"></body></html>"""
    og = parse_opengraph(html, "https://example.com/posts/1/")
    assert og == {
        "og:title": "The title",
        "og:description": "Via name=",
        "og:image": "https://example.com/posts/img/a.png",
    }
    fallback = parse_opengraph(
        "<title>A &amp; B</title><meta name=description content=D>", "https://x/"
    )
    assert fallback == {"og:title": "A & B", "og:description": "D"}
    # Only http(s) images survive.
    assert "og:image" not in parse_opengraph(
        '<meta property="og:image" content="javascript:alert(1)">', "https://x/"
    )
    assert parse_opengraph("<<<not html>>>", "https://x/") == {}
    # Work is bounded on hostile input.
    many = "<meta property='og:t' content='x'>" + "<b>" * 10_000
    assert parse_opengraph(many, "https://x/") == {"og:t": "x"}


def test_decode_html() -> None:
    latin = "<meta charset='iso-8859-1'><title>caf\xe9</title>".encode("latin-1")
    assert "café" in decode_html(latin, "text/html")
    assert "café" in decode_html("café".encode(), "text/html; charset=utf-8")
    assert decode_html(b"<meta charset='no-such-codec'>x", None).endswith("x")
