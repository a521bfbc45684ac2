"""The media repository: uploads, reserved `mxc://` URIs, downloads and thumbnails of
local and remote media (spec: Client-Server API > Content repository).

* Uploads stream to disk with the size limit enforced while reading (413
  `M_TOO_LARGE`), content-addressed; the row records uploader, type, name, size, hash.
* `create_media` reserves an ID for 24 h (at most `max_pending_uploads` per user, else
  429); `upload_to_media` fills it once, by its creator only (403), never twice (409
  `M_CANNOT_OVERWRITE_MEDIA`). Downloads of a reserved ID wait up to `timeout_ms` for
  the upload, then 504 `M_NOT_YET_UPLOADED`.
* Quarantined media is 404 `M_NOT_FOUND`, as is anything unknown.
* Other servers' media goes through `RemoteMediaCache` (404 when federation is off or
  the request says `allow_remote=false`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.errors import MatrixError, forbidden, not_found, too_large
from ranvier.core.ids import is_valid_server_name
from ranvier.core.media import (
    MAX_FILENAME_LENGTH,
    ThumbnailMethod,
    is_thumbnailable,
    is_valid_media_id,
    mxc_uri,
    normalize_content_type,
)
from ranvier.services.media.files import (
    ContentTooLargeError,
    MediaFiles,
    PendingFile,
    ServedFile,
)
from ranvier.services.media.remote import RemoteMediaCache
from ranvier.services.media.thumbnails import ThumbnailService, ThumbnailSource
from ranvier.storage.stores.media import (
    LOCAL_ORIGIN,
    LocalMedia,
    MediaStore,
    PendingUploadResult,
    RemoteMedia,
    UploadedContent,
)
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS: Final = 20_000  # spec default of `timeout_ms`


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    server_name: str
    max_upload_size: int
    # Spec recommends 24 h for `unused_expires_at`.
    pending_lifetime_ms: int = 24 * 3600 * 1000
    max_pending_uploads: int = 10
    # Cap on how long a download waits for a reserved ID's upload.
    max_wait_ms: int = 60_000


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def _check_filename(filename: str | None) -> str | None:
    if filename is None or filename == "":
        return None
    if len(filename) > MAX_FILENAME_LENGTH:
        raise invalid_param(
            f"'filename' is longer than {MAX_FILENAME_LENGTH} characters"
        )
    return filename


def _check_media_ref(server_name: str, media_id: str) -> None:
    if not is_valid_server_name(server_name):
        raise invalid_param("Invalid server name")
    if not is_valid_media_id(media_id):
        raise not_found("Media not found")


class MediaRepository:
    def __init__(
        self,
        store: MediaStore,
        files: MediaFiles,
        thumbnails: ThumbnailService,
        remote: RemoteMediaCache | None,
        clock: Clock,
        supervisor: TaskSupervisor,
        policy: MediaPolicy,
        random_id: Callable[[], str],
    ) -> None:
        self._store = store
        self._files = files
        self._thumbnails = thumbnails
        self._remote = remote
        self._clock = clock
        self._supervisor = supervisor
        self._policy = policy
        self._random_id = random_id
        # Downloads waiting for a reserved ID's upload, woken when it completes.
        self._upload_waiters: dict[str, asyncio.Event] = {}

    @property
    def server_name(self) -> str:
        return self._policy.server_name

    def get_config(self) -> dict[str, Any]:
        return {"m.upload.size": self._policy.max_upload_size}

    # -- uploads ------------------------------------------------------------------
    async def _receive(
        self, chunks: AsyncIterable[bytes], content_length: int | None
    ) -> PendingFile:
        limit = self._policy.max_upload_size
        if content_length is not None and content_length > limit:
            raise too_large(f"Cannot upload files larger than {limit} bytes")
        try:
            return await self._files.receive(chunks, limit)
        except ContentTooLargeError:
            raise too_large(f"Cannot upload files larger than {limit} bytes") from None

    async def upload(
        self,
        user_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        content_length: int | None,
        url_cache: str | None = None,
    ) -> str:
        """Store new content; returns its `mxc://` URI."""
        name = _check_filename(filename)
        pending = await self._receive(chunks, content_length)
        content = UploadedContent(
            normalize_content_type(content_type), name, pending.size, pending.sha256
        )
        media_id = self._random_id()
        async with self._files.lock(pending.sha256):
            await self._files.commit(pending)
            await self._store.store_local_media(
                media_id, user_id, content, self._clock.time_msec(), url_cache=url_cache
            )
        self._after_upload(media_id, content)
        return mxc_uri(self.server_name, media_id)

    async def create_media(self, user_id: str) -> dict[str, Any]:
        """`POST /_matrix/media/v1/create`."""
        now = self._clock.time_msec()
        expires = now + self._policy.pending_lifetime_ms
        media_id = self._random_id()
        ok = await self._store.create_pending_media(
            media_id, user_id, now, expires, self._policy.max_pending_uploads
        )
        if not ok:
            raise MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                "Too many pending media uploads",
                retry_after_ms=60_000,
            )
        return {
            "content_uri": mxc_uri(self.server_name, media_id),
            "unused_expires_at": expires,
        }

    async def upload_to_media(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        content_length: int | None,
    ) -> None:
        """`PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`."""
        if server_name != self.server_name or not is_valid_media_id(media_id):
            raise not_found("Unknown media ID")
        name = _check_filename(filename)
        existing = await self._store.get_local_media(media_id)
        self._check_reservation(existing, user_id)
        pending = await self._receive(chunks, content_length)
        content = UploadedContent(
            normalize_content_type(content_type), name, pending.size, pending.sha256
        )
        async with self._files.lock(pending.sha256):
            await self._files.commit(pending)
            result = await self._store.complete_pending_upload(
                media_id, user_id, content, self._clock.time_msec()
            )
            # Lost a race with another upload to this ID: drop the file unless shared.
            if result is not PendingUploadResult.OK and not (
                await self._store.is_sha256_referenced(pending.sha256)
            ):
                await self._files.delete(pending.sha256)
        if result is not PendingUploadResult.OK:
            raise self._reservation_error(result)
        self._after_upload(media_id, content)

    def _check_reservation(self, row: LocalMedia | None, user_id: str) -> None:
        if row is None:
            raise self._reservation_error(PendingUploadResult.NOT_FOUND)
        if row.upload_ts is not None:
            raise self._reservation_error(PendingUploadResult.ALREADY_UPLOADED)
        if row.user_id != user_id:
            raise self._reservation_error(PendingUploadResult.FORBIDDEN)
        expires = row.unused_expires_ts
        if expires is not None and expires <= self._clock.time_msec():
            raise self._reservation_error(PendingUploadResult.EXPIRED)

    @staticmethod
    def _reservation_error(result: PendingUploadResult) -> MatrixError:
        if result is PendingUploadResult.ALREADY_UPLOADED:
            return MatrixError(
                409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded"
            )
        if result is PendingUploadResult.FORBIDDEN:
            return forbidden("Only the creator of this media ID may upload to it")
        return not_found("Unknown media ID")

    def _after_upload(self, media_id: str, content: UploadedContent) -> None:
        waiter = self._upload_waiters.pop(media_id, None)
        if waiter is not None:
            waiter.set()
        if is_thumbnailable(content.content_type):
            source = ThumbnailSource(
                LOCAL_ORIGIN,
                media_id,
                content.sha256,
                content.content_type,
                content.size,
                remote=False,
            )
            _ = self._supervisor.start(
                f"media-thumbnails-{media_id}", self._thumbnails.pregenerate(source)
            )

    # -- downloads ----------------------------------------------------------------
    async def get_local_media(self, media_id: str, timeout_ms: int) -> ServedFile:
        """An uploaded local media file, waiting for a reserved ID's upload."""
        row = await self._store.get_local_media(media_id)
        if row is not None and not row.is_uploaded:
            row = await self._wait_for_upload(row, timeout_ms)
        if row is None or row.quarantined or row.sha256 is None:
            raise not_found("Media not found")
        if not self._files.exists(row.sha256):
            logger.warning("media %s has no file on disk", media_id)
            raise not_found("Media not found")
        return ServedFile(
            self._files.path_of(row.sha256),
            row.content_type or "application/octet-stream",
            row.size or 0,
            row.upload_name,
            row.sha256,
        )

    async def _wait_for_upload(self, row: LocalMedia, timeout_ms: int) -> LocalMedia:
        now = self._clock.time_msec()
        if row.unused_expires_ts is not None and row.unused_expires_ts <= now:
            raise not_found("Media not found")
        wait_ms = min(max(timeout_ms, 0), self._policy.max_wait_ms)
        event = self._upload_waiters.setdefault(row.media_id, asyncio.Event())
        try:
            async with asyncio.timeout(wait_ms / 1000):
                await event.wait()
        except TimeoutError:
            if self._upload_waiters.get(row.media_id) is event:
                del self._upload_waiters[row.media_id]
        fresh = await self._store.get_local_media(row.media_id)
        if fresh is None or not fresh.is_uploaded:
            raise MatrixError(
                504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded"
            )
        return fresh

    async def get_download(
        self,
        server_name: str,
        media_id: str,
        *,
        allow_remote: bool = True,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> ServedFile:
        _check_media_ref(server_name, media_id)
        if server_name == self.server_name:
            return await self.get_local_media(media_id, timeout_ms)
        remote = await self._get_remote(server_name, media_id, allow_remote, timeout_ms)
        return ServedFile(
            self._files.path_of(remote.sha256),
            remote.content_type,
            remote.size,
            remote.upload_name,
        )

    async def _get_remote(
        self, server_name: str, media_id: str, allow_remote: bool, timeout_ms: int
    ) -> RemoteMedia:
        if self._remote is None or not allow_remote:
            raise not_found("Media not found")
        wait = min(max(timeout_ms, 0), self._policy.max_wait_ms)
        return await self._remote.get(server_name, media_id, wait)

    async def get_thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: ThumbnailMethod,
        *,
        allow_remote: bool = True,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> ServedFile:
        _check_media_ref(server_name, media_id)
        if server_name == self.server_name:
            local = await self.get_local_media(media_id, timeout_ms)
            source = ThumbnailSource(
                LOCAL_ORIGIN,
                media_id,
                local.sha256 or "",
                local.content_type,
                local.size,
                remote=False,
            )
        else:
            remote = await self._get_remote(
                server_name, media_id, allow_remote, timeout_ms
            )
            source = ThumbnailSource(
                server_name,
                media_id,
                remote.sha256,
                remote.content_type,
                remote.size,
                remote=True,
            )
        return await self._thumbnails.get_thumbnail(source, width, height, method)
