"""`multipart/mixed` bodies of the federation media endpoints (spec: Server-Server API >
Content Repository, RFC 2046 §5.1).

A response has exactly two parts: JSON metadata (currently always `{}`), then either
the media bytes with their `Content-Type` / `Content-Disposition`, or a `Location`
header naming where to fetch them. Pure: building the framing and parsing a body that
is already in memory (and already size-capped by the caller).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

CRLF: Final = b"\r\n"
_BOUNDARY_RE: Final = re.compile(r"""boundary\s*=\s*"?([^";]{1,70})"?""", re.I)


class MultipartError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class MediaPart:
    headers: dict[str, str]
    body: bytes

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def content_disposition(self) -> str | None:
        return self.headers.get("content-disposition")


def boundary_of(content_type: str | None) -> str:
    if content_type is None:
        raise MultipartError("no Content-Type")
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence != "multipart/mixed":
        raise MultipartError(f"expected multipart/mixed, got {essence}")
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        raise MultipartError("multipart/mixed without a boundary")
    return m[1]


def multipart_head(boundary: str, part_headers: dict[str, str]) -> bytes:
    """Everything before the media bytes: the JSON part and the media part's headers."""
    b = boundary.encode("ascii")
    head = [
        b"--" + b + CRLF,
        b"Content-Type: application/json" + CRLF + CRLF,
        b"{}" + CRLF,
        b"--" + b + CRLF,
    ]
    for name, value in part_headers.items():
        head.append(f"{name}: {value}".encode("latin-1") + CRLF)
    head.append(CRLF)
    return b"".join(head)


def multipart_tail(boundary: str) -> bytes:
    return CRLF + b"--" + boundary.encode("ascii") + b"--" + CRLF


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(CRLF):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError("malformed part header")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode(
            "latin-1"
        )
    return headers


def parse_media_multipart(body: bytes, boundary: str) -> MediaPart:
    """The media part (the second one) of a federation media response."""
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("boundary not found")
    # Parts are separated by CRLF + delimiter; the first delimiter may open the body.
    rest = body[start + len(delimiter) :]
    parts = rest.split(CRLF + delimiter)
    if len(parts) < 3 or not parts[-1].startswith(b"--"):
        raise MultipartError("expected two parts and a closing delimiter")
    media = parts[1]
    if not media.startswith(CRLF):
        raise MultipartError("malformed part")
    head, sep, content = media[len(CRLF) :].partition(CRLF + CRLF)
    if not sep:
        # A part with headers and an empty body may end right after its headers.
        head, content = media[len(CRLF) :].rstrip(CRLF), b""
    return MediaPart(_parse_headers(head), content)
