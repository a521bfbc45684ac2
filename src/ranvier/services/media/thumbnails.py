"""Thumbnails of local and cached remote images (spec: Client-Server API > Thumbnails).

A request is answered with one of the configured sizes (`choose_thumbnail_size`), so
at most that many thumbnails exist per image. Each is generated once (one generation
per image and size at a time), off the event loop, stored content-addressed like any
media and recorded in `media_thumbnails`. Uploads of images pre-generate every size in
the background.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ranvier.core.errors import MatrixError
from ranvier.core.media import (
    DEFAULT_THUMBNAIL_SIZES,
    ThumbnailMethod,
    ThumbnailSize,
    choose_thumbnail_size,
    is_thumbnailable,
)
from ranvier.services.media.files import MediaFiles, ServedFile
from ranvier.services.media.thumbnailer import (
    ImageTooLargeError,
    ThumbnailError,
    make_thumbnail,
)
from ranvier.storage.stores.media import MediaStore, Thumbnail
from ranvier.util.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThumbnailPolicy:
    # Images with more pixels are not decoded at all (decompression bombs).
    max_pixels: int = 32_000_000
    # Larger sources are not thumbnailed: 413 (local) / 502 (remote) M_TOO_LARGE.
    max_source_bytes: int = 50 << 20
    sizes: tuple[ThumbnailSize, ...] = DEFAULT_THUMBNAIL_SIZES


@dataclass(frozen=True, slots=True)
class ThumbnailSource:
    """The original an image thumbnail is made from."""

    origin: str  # `LOCAL_ORIGIN` for local media
    media_id: str
    sha256: str
    content_type: str
    size: int
    remote: bool


def cannot_thumbnail() -> MatrixError:
    return MatrixError(
        400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content"
    )


def _too_large(remote: bool) -> MatrixError:
    # Spec: 413 for local content, 502 for remote content.
    return MatrixError(
        502 if remote else 413, "M_TOO_LARGE", "Content is too large to thumbnail"
    )


class ThumbnailService:
    def __init__(
        self, store: MediaStore, files: MediaFiles, policy: ThumbnailPolicy
    ) -> None:
        self._store = store
        self._files = files
        self._policy = policy
        self._locks = KeyedLock()

    def _check_source(self, source: ThumbnailSource) -> None:
        if not is_thumbnailable(source.content_type):
            raise cannot_thumbnail()
        if source.size > self._policy.max_source_bytes:
            raise _too_large(source.remote)

    async def get_thumbnail(
        self, source: ThumbnailSource, width: int, height: int, method: ThumbnailMethod
    ) -> ServedFile:
        self._check_source(source)
        size = choose_thumbnail_size(width, height, method, self._policy.sizes)
        thumb = await self._get_or_generate(source, size)
        ext = "jpg" if thumb.content_type == "image/jpeg" else "png"
        return ServedFile(
            self._files.path_of(thumb.sha256),
            thumb.content_type,
            thumb.size,
            f"thumbnail.{ext}",
        )

    async def pregenerate(self, source: ThumbnailSource) -> None:
        """Every configured size, for a freshly uploaded image (background task)."""
        if not is_thumbnailable(source.content_type):
            return
        for size in self._policy.sizes:
            try:
                await self._get_or_generate(source, size)
            except MatrixError as e:
                logger.info("no thumbnails for %s: %s", source.media_id, e.message)
                return

    async def _stored(
        self, source: ThumbnailSource, size: ThumbnailSize
    ) -> Thumbnail | None:
        thumb = await self._store.get_thumbnail(
            source.origin, source.media_id, size.width, size.height, size.method
        )
        if thumb is not None and self._files.exists(thumb.sha256):
            return thumb
        return None

    async def _get_or_generate(
        self, source: ThumbnailSource, size: ThumbnailSize
    ) -> Thumbnail:
        thumb = await self._stored(source, size)
        if thumb is not None:
            return thumb
        async with self._locks.lock((source.origin, source.media_id, size)):
            thumb = await self._stored(source, size)
            if thumb is not None:
                return thumb
            return await self._generate(source, size)

    async def _generate(
        self, source: ThumbnailSource, size: ThumbnailSize
    ) -> Thumbnail:
        self._check_source(source)
        try:
            image = await asyncio.to_thread(
                make_thumbnail,
                self._files.path_of(source.sha256),
                size,
                self._policy.max_pixels,
            )
        except ImageTooLargeError:
            raise _too_large(source.remote) from None
        except ThumbnailError as e:
            logger.info("cannot thumbnail %s: %s", source.media_id, e)
            raise cannot_thumbnail() from None
        pending = await self._files.receive_bytes(image.data)
        # Recorded under the configured size (the lookup key); a scaled image may be
        # smaller, since scaling never enlarges.
        thumb = Thumbnail(
            size.width, size.height, size.method, image.content_type, pending.size,
            pending.sha256,
        )  # fmt: skip
        async with self._files.lock(pending.sha256):
            await self._files.commit(pending)
            await self._store.store_thumbnail(source.origin, source.media_id, thumb)
        return thumb
