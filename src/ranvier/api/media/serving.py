"""Turning stored media into HTTP responses, and the query parameters media endpoints
share.

Every media response carries `MEDIA_SECURITY_HEADERS` (sandboxing CSP, `nosniff`,
CORP) and a `Content-Disposition` that is `inline` only for the spec's safe types, so
uploaded HTML or SVG is never rendered from our origin. Files are served with
`FileResponse` (streamed from disk, `Range` requests supported). Federation responses
are `multipart/mixed` (`core/multipart.py`), streamed the same way.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from aiohttp import web

from ranvier.api.http import MatrixRequest
from ranvier.core.errors import MatrixError, missing_param
from ranvier.core.media import (
    MEDIA_SECURITY_HEADERS,
    THUMBNAIL_METHODS,
    ThumbnailMethod,
    content_disposition,
)
from ranvier.core.multipart import multipart_head, multipart_tail
from ranvier.services.media.files import ServedFile, open_for_reading
from ranvier.services.media.repository import DEFAULT_TIMEOUT_MS

_CHUNK: Final = 256 * 1024
# Thumbnails larger than this are not a thumbnail any more.
MAX_THUMBNAIL_DIMENSION: Final = 10_000
UPLOAD_CHUNK: Final = 64 * 1024


def _headers(
    served: ServedFile, filename: str | None, *, thumbnail: bool
) -> dict[str, str]:
    return {
        **MEDIA_SECURITY_HEADERS,
        "Content-Type": served.content_type,
        "Content-Disposition": content_disposition(
            served.content_type, filename or served.upload_name, force_inline=thumbnail
        ),
        # Media never changes under its ID.
        "Cache-Control": "public, max-age=86400, s-maxage=86400",
    }


def file_response(
    served: ServedFile, filename: str | None = None, *, thumbnail: bool = False
) -> web.StreamResponse:
    return web.FileResponse(
        served.path,
        chunk_size=_CHUNK,
        headers=_headers(served, filename, thumbnail=thumbnail),
    )


async def multipart_response(
    req: MatrixRequest, served: ServedFile, *, thumbnail: bool = False
) -> web.StreamResponse:
    """Spec (S-S API > Content Repository): a JSON part (`{}`), then the media."""
    boundary = secrets.token_hex(16)
    part = {
        "Content-Type": served.content_type,
        "Content-Disposition": content_disposition(
            served.content_type, served.upload_name, force_inline=thumbnail
        ),
    }
    head = multipart_head(boundary, part)
    tail = multipart_tail(boundary)
    resp = web.StreamResponse(
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"}
    )
    resp.content_length = len(head) + served.size + len(tail)
    await resp.prepare(req.raw)
    if req.raw.method == "HEAD":  # GET's headers only (api/http.py routes HEAD here)
        await resp.write_eof()
        return resp
    await resp.write(head)
    fh = await open_for_reading(served.path)
    try:
        while chunk := await asyncio.to_thread(fh.read, _CHUNK):
            await resp.write(chunk)
    finally:
        # Shielded: a cancelled request still closes the file (after any read).
        await asyncio.shield(asyncio.to_thread(fh.close))
    await resp.write(tail)
    await resp.write_eof()
    return resp


# -- shared query parameters -----------------------------------------------------------


def timeout_ms(req: MatrixRequest) -> int:
    value = req.query_int("timeout_ms", DEFAULT_TIMEOUT_MS, minimum=0)
    assert value is not None
    return value


def thumbnail_params(req: MatrixRequest) -> tuple[int, int, ThumbnailMethod]:
    dims: list[int] = []
    for name in ("width", "height"):
        value = req.query_int(name, minimum=1, maximum=MAX_THUMBNAIL_DIMENSION)
        if value is None:
            raise missing_param(f"Missing '{name}'")
        dims.append(value)
    method = req.query.get("method", "scale")
    if method not in THUMBNAIL_METHODS:
        raise MatrixError(400, "M_INVALID_PARAM", "'method' must be crop or scale")
    # Parsed for validation only: thumbnails are never animated (the spec allows it).
    req.query_bool("animated")
    return dims[0], dims[1], "crop" if method == "crop" else "scale"
