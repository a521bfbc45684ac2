"""Pure rules of the content repository (spec: Client-Server API > Content repository).

Media IDs and `mxc://` URIs, content types, how a file is served to a browser
(`Content-Disposition`, the sandboxing headers) and which stored thumbnail answers a
request. No I/O: the media services and the HTTP edge call these.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from ranvier.core.ids import is_valid_server_name

ThumbnailMethod = Literal["crop", "scale"]
THUMBNAIL_METHODS: Final[tuple[ThumbnailMethod, ...]] = ("crop", "scale")

# Spec: "Matrix Content (mxc://) URIs": the media ID "MUST only contain the characters
# A-Z, a-z, 0-9, _ and -". The length cap keeps it a sane database key.
_MEDIA_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
# type "/" subtype, then optional parameters; RFC 9110 token characters only, printable
# ASCII, so a stored value can never break a response header.
_RFC9110_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE_RE: Final = re.compile(
    rf"({_RFC9110_TCHARS})/({_RFC9110_TCHARS})((?:\s*;[\x20-\x7e]*)?)"
)
MAX_CONTENT_TYPE_LENGTH: Final = 255
MAX_FILENAME_LENGTH: Final = 255

# Spec: "Serving inline content": only these may be served `inline`; anything else is
# an `attachment`, so a browser never renders HTML, SVG or script from our origin.
INLINE_CONTENT_TYPES: Final = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

# Sent with every piece of media: even a file a browser is tricked into rendering can run
# no script, load nothing and is sandboxed (the headers Synapse sends, plus CORP so that
# web clients on other origins may embed it).
MEDIA_SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
        "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}

# Content types Pillow decodes and we thumbnail.
THUMBNAILABLE_TYPES: Final = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"}
)


class InvalidMxcError(ValueError):
    pass


def is_valid_media_id(media_id: str) -> bool:
    return _MEDIA_ID_RE.fullmatch(media_id) is not None


def mxc_uri(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def parse_mxc(uri: str) -> tuple[str, str]:
    """`mxc://<server-name>/<media-id>` → (server name, media ID)."""
    if not uri.startswith("mxc://"):
        raise InvalidMxcError("not an mxc:// URI")
    server_name, sep, media_id = uri[len("mxc://") :].partition("/")
    if not sep or not is_valid_server_name(server_name):
        raise InvalidMxcError("invalid server name in mxc:// URI")
    if not is_valid_media_id(media_id):
        raise InvalidMxcError("invalid media ID in mxc:// URI")
    return server_name, media_id


def normalize_content_type(value: str | None) -> str:
    """The stored form of an upload's `Content-Type`: type and subtype lower-cased,
    parameters kept; anything unparsable becomes `application/octet-stream` (the spec
    allows it "when the server determines the content type is obviously wrong")."""
    if value is None or len(value) > MAX_CONTENT_TYPE_LENGTH:
        return DEFAULT_CONTENT_TYPE
    match = _CONTENT_TYPE_RE.fullmatch(value.strip())
    if match is None:
        return DEFAULT_CONTENT_TYPE
    params = match[3].strip()
    essence = f"{match[1].lower()}/{match[2].lower()}"
    return f"{essence}{'; ' + params.lstrip(';').strip() if params else ''}"


def media_type_essence(content_type: str) -> str:
    """`text/plain; charset=utf-8` → `text/plain`."""
    return content_type.split(";", 1)[0].strip().lower()


def is_inline_content_type(content_type: str) -> bool:
    return media_type_essence(content_type) in INLINE_CONTENT_TYPES


def is_thumbnailable(content_type: str) -> bool:
    return media_type_essence(content_type) in THUMBNAILABLE_TYPES


def _clean_filename(filename: str) -> str:
    # Control characters could split the header; path separators mean nothing here.
    return "".join(c for c in filename if c.isprintable() and c not in "/\\").strip()[
        :MAX_FILENAME_LENGTH
    ]


def content_disposition(
    content_type: str, filename: str | None, *, force_inline: bool = False
) -> str:
    """`Content-Disposition` for serving media: `inline` only for the spec's safe list
    (thumbnails are always inline, `force_inline`), else `attachment`; the file name as
    a quoted ASCII string, or RFC 8187 `filename*=utf-8''…` when it needs escaping."""
    inline = force_inline or is_inline_content_type(content_type)
    disposition = "inline" if inline else "attachment"
    name = _clean_filename(filename) if filename else ""
    if not name:
        return disposition
    if name.isascii() and '"' not in name:
        return f'{disposition}; filename="{name}"'
    encoded = urllib.parse.quote(name, safe="")
    return f"{disposition}; filename*=utf-8''{encoded}"


def filename_from_disposition(value: str | None) -> str | None:
    """The file name of a remote server's `Content-Disposition`, if it gives one."""
    if not value:
        return None
    plain: str | None = None
    for raw in value.split(";")[1:]:
        key, sep, val = raw.strip().partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        val = val.strip()
        if key == "filename*":
            charset, _, rest = val.partition("''")
            if charset.lower() in ("utf-8", "utf8") and rest:
                return _clean_filename(urllib.parse.unquote(rest)) or None
        elif key == "filename":
            plain = _clean_filename(val.strip('"')) or None
    return plain


# -- thumbnails --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    width: int
    height: int
    method: ThumbnailMethod


# The sizes generated for every uploaded image (Synapse's defaults); requests are
# answered from these only, so the cache holds at most five thumbnails per image
# however many sizes clients ask for.
DEFAULT_THUMBNAIL_SIZES: Final[tuple[ThumbnailSize, ...]] = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


def choose_thumbnail_size(
    width: int,
    height: int,
    method: ThumbnailMethod,
    sizes: Iterable[ThumbnailSize] = DEFAULT_THUMBNAIL_SIZES,
) -> ThumbnailSize:
    """The configured size answering a request. Spec: "the actual thumbnail may be
    larger than the size specified": the smallest size of the same method covering the
    request, else the smallest of any method covering it, else the largest scale."""
    options = list(sizes)

    def covers(s: ThumbnailSize) -> bool:
        return s.width >= width and s.height >= height

    def area(s: ThumbnailSize) -> int:
        return s.width * s.height

    same = [s for s in options if s.method == method and covers(s)]
    if same:
        return min(same, key=area)
    anything = [s for s in options if covers(s)]
    if anything:
        return min(anything, key=area)
    scales = [s for s in options if s.method == "scale"] or options
    return max(scales, key=area)
