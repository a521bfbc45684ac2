"""OpenGraph extraction for URL previews (https://ogp.me/, spec: Client-Server API >
`GET /_matrix/client/v1/media/preview_url`).

Pure: bytes and a URL in, a dict of `og:*` strings out. The stdlib HTML tokenizer is
forgiving enough for real pages and has no parser to exploit beyond it; only the
`<head>`-ish tags are looked at and the work stops at `MAX_TAGS`, so a hostile page
costs bounded time.
"""

from __future__ import annotations

import re
import urllib.parse
from html.parser import HTMLParser
from typing import Final

MAX_TAGS: Final = 5000
MAX_VALUE_LENGTH: Final = 1000
MAX_KEYS: Final = 50
_CHARSET_RE: Final = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_:.-]+)""", re.I
)
_HEADER_CHARSET_RE: Final = re.compile(r"charset\s*=\s*\"?([a-zA-Z0-9_:.-]+)", re.I)


class _OpenGraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.description: str | None = None
        self.title_parts: list[str] = []
        self._in_title = False
        self._tags = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tags += 1
        if self._tags > MAX_TAGS:
            raise _Done
        if tag == "meta":
            self._meta(dict(attrs))
        elif tag == "title" and not self.title_parts:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "head" and self.og:
            raise _Done

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)

    def _meta(self, attrs: dict[str, str | None]) -> None:
        content = attrs.get("content")
        if content is None:
            return
        # og: tags use `property`; many sites put them in `name` instead.
        key = (attrs.get("property") or attrs.get("name") or "").strip()
        if key.startswith("og:") and key not in self.og and len(self.og) < MAX_KEYS:
            self.og[key] = content.strip()[:MAX_VALUE_LENGTH]
        elif key.lower() == "description" and self.description is None:
            self.description = content.strip()[:MAX_VALUE_LENGTH]


class _Done(Exception):
    """Enough has been read."""


def guess_html_encoding(body: bytes, content_type: str | None) -> str:
    """The charset from the `Content-Type` header, else a `<meta charset>` in the first
    KiB, else UTF-8."""
    if content_type:
        m = _HEADER_CHARSET_RE.search(content_type)
        if m:
            return m[1]
    m2 = _CHARSET_RE.search(body[:1024])
    if m2:
        return m2[1].decode("ascii")
    return "utf-8"


def decode_html(body: bytes, content_type: str | None) -> str:
    encoding = guess_html_encoding(body, content_type)
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def parse_opengraph(html: str, page_url: str) -> dict[str, str]:
    """`og:*` meta tags, with `og:title` falling back to `<title>` and
    `og:description` to `<meta name="description">`; a relative `og:image` is made
    absolute against `page_url`, and one that is not http(s) is dropped."""
    parser = _OpenGraphParser()
    try:
        parser.feed(html)
        parser.close()
    except _Done:
        pass
    og = dict(parser.og)
    if "og:title" not in og and parser.title_parts:
        title = " ".join("".join(parser.title_parts).split())
        if title:
            og["og:title"] = title[:MAX_VALUE_LENGTH]
    if "og:description" not in og and parser.description:
        og["og:description"] = parser.description
    image = og.pop("og:image", None)
    if image:
        absolute = urllib.parse.urljoin(page_url, image)
        if urllib.parse.urlsplit(absolute).scheme in ("http", "https"):
            og["og:image"] = absolute
    return og
