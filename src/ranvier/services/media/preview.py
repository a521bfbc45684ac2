"""URL previews (spec: Client-Server API > `GET /_matrix/client/v1/media/preview_url`).

The page is fetched through `WebFetcher` (IP-range policy after DNS, redirects checked,
size cap, timeout); HTML gives its OpenGraph tags (`core/opengraph.py`), an image URL
gives the image itself. `og:image` is downloaded into the media store (as local media
marked `url_cache`, so the cleanup expires it) and replaced by its `mxc://` URI, with
`og:image:type`, `matrix:image:size` and, when readable, the dimensions. Answers are
cached per URL (fragment dropped) for `cache_ms`; one fetch per URL at a time.

Errors: a refused destination is 403 `M_UNKNOWN` (as Synapse answers an IP-blocked
preview); the page failing to load is 502; a bad `url` is 400 `M_INVALID_PARAM`. A
failing `og:image` only drops the image, never the preview.
"""

from __future__ import annotations

import asyncio
import io
import logging
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.errors import MatrixError
from ranvier.core.json import InvalidJsonError, decode_json, encode_canonical_json
from ranvier.core.media import media_type_essence
from ranvier.core.opengraph import decode_html, parse_opengraph
from ranvier.services.media.repository import MediaRepository, invalid_param
from ranvier.services.media.thumbnailer import ThumbnailError, read_image_info
from ranvier.services.media.web import (
    BlockedDestinationError,
    ResponseTooLargeError,
    WebFetcher,
    WebFetchError,
    WebResponse,
)
from ranvier.storage.stores.media import MediaStore
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)

MAX_URL_LENGTH: Final = 2048
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_INFO_MAX_PIXELS: Final = 100_000_000


@dataclass(frozen=True, slots=True)
class PreviewPolicy:
    max_page_bytes: int = 10 << 20
    max_image_bytes: int = 10 << 20
    cache_ms: int = 3600 * 1000


def _normalize_url(url: str | None) -> str:
    if url is None or url == "":
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'url'")
    if len(url) > MAX_URL_LENGTH:
        raise invalid_param(f"'url' is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urllib.parse.urlsplit(url)
        has_host = bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise invalid_param("'url' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not has_host:
        raise invalid_param("'url' must be an http or https URL")
    return urllib.parse.urlunsplit(parts._replace(fragment=""))


def _upstream_error(e: WebFetchError) -> MatrixError:
    if isinstance(e, BlockedDestinationError):
        return MatrixError(403, "M_UNKNOWN", "IP address blocked")
    if isinstance(e, ResponseTooLargeError):
        return MatrixError(502, "M_TOO_LARGE", "Content is too large to preview")
    return MatrixError(502, "M_UNKNOWN", "Failed to fetch the URL")


class UrlPreviewService:
    def __init__(
        self,
        store: MediaStore,
        fetcher: WebFetcher,
        media: MediaRepository,
        clock: Clock,
        policy: PreviewPolicy,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._media = media
        self._clock = clock
        self._policy = policy
        self._locks = KeyedLock()

    async def get_preview(self, user_id: str, raw_url: str | None) -> dict[str, Any]:
        url = _normalize_url(raw_url)
        cached = await self._cached(url)
        if cached is not None:
            return cached
        async with self._locks.lock(url):
            cached = await self._cached(url)
            if cached is not None:
                return cached
            og = await self._build(user_id, url)
            now = self._clock.time_msec()
            await self._store.store_url_preview(
                url,
                encode_canonical_json(og).decode(),
                now,
                now + self._policy.cache_ms,
            )
            return og

    async def _cached(self, url: str) -> dict[str, Any] | None:
        text = await self._store.get_url_preview(url, self._clock.time_msec())
        if text is None:
            return None
        try:
            value = decode_json(text)
        except InvalidJsonError:
            return None
        return value if isinstance(value, dict) else None

    async def _build(self, user_id: str, url: str) -> dict[str, Any]:
        try:
            page = await self._fetcher.get(url, max_bytes=self._policy.max_page_bytes)
        except WebFetchError as e:
            logger.info("preview of %s failed: %s", url, e)
            raise _upstream_error(e) from None
        if page.status != 200:
            raise MatrixError(502, "M_UNKNOWN", f"Got error {page.status}")
        essence = media_type_essence(page.content_type or "")
        if essence.startswith("image/"):
            return await self._image_og(user_id, page) or {}
        if essence not in _HTML_TYPES:
            return {}
        html = await asyncio.to_thread(decode_html, page.body, page.content_type)
        og: dict[str, Any] = await asyncio.to_thread(parse_opengraph, html, page.url)
        image_url = og.pop("og:image", None)
        if isinstance(image_url, str):
            og.update(await self._fetch_image(user_id, image_url))
        return og

    async def _fetch_image(self, user_id: str, image_url: str) -> dict[str, Any]:
        try:
            image = await self._fetcher.get(
                image_url, max_bytes=self._policy.max_image_bytes
            )
        except WebFetchError as e:
            logger.info("preview image %s failed: %s", image_url, e)
            return {}
        if image.status != 200:
            return {}
        return await self._image_og(user_id, image) or {}

    async def _image_og(
        self, user_id: str, image: WebResponse
    ) -> dict[str, Any] | None:
        content_type = image.content_type or ""
        if not media_type_essence(content_type).startswith("image/"):
            return None

        async def body() -> AsyncIterator[bytes]:
            yield image.body

        try:
            mxc = await self._media.upload(
                user_id,
                body(),
                content_type=content_type,
                filename=None,
                content_length=len(image.body),
                url_cache=image.url,
            )
        except MatrixError as e:
            logger.info("preview image %s not stored: %s", image.url, e.message)
            return None
        og: dict[str, Any] = {
            "og:image": mxc,
            "og:image:type": media_type_essence(content_type),
            "matrix:image:size": len(image.body),
        }
        try:
            info = await asyncio.to_thread(
                read_image_info, io.BytesIO(image.body), _INFO_MAX_PIXELS
            )
        except ThumbnailError:
            return og
        og["og:image:width"] = info.width
        og["og:image:height"] = info.height
        return og
