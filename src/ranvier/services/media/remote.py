"""Other servers' media: fetched over federation on first use, then served from a local
cache (spec: Server-Server API > Content Repository; Client-Server API > Content
repository, "Remote media").

First `GET /_matrix/federation/v1/media/download/{mediaId}` (signed; `multipart/mixed`:
JSON metadata, then the bytes or a `Location` to fetch them from). A server that does
not know that endpoint (404/400/405 `M_UNRECOGNIZED`, or no Matrix error at all) is
asked with the legacy unauthenticated `GET /_matrix/media/v3/download/{origin}/{mediaId}
?allow_remote=false`. Responses are capped at `max_bytes`; one fetch per media at a
time. The cleanup drops copies nobody read for `media.remote_media_lifetime`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

from ranvier.core.errors import MatrixError, not_found
from ranvier.core.media import filename_from_disposition, normalize_content_type
from ranvier.core.multipart import MultipartError, boundary_of, parse_media_multipart
from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError
from ranvier.federation.transport import TransportResponse
from ranvier.services.media.files import MediaFiles
from ranvier.services.media.web import ResponseTooLargeError, WebFetcher, WebFetchError
from ranvier.storage.stores.media import MediaStore, RemoteMedia
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)

# Multipart framing and the JSON part on top of the media itself.
_MULTIPART_OVERHEAD: Final = 64 * 1024
# A read refreshes `last_access_ts` at most this often: one write a day, not per read.
_TOUCH_INTERVAL_MS: Final = 24 * 3600 * 1000
_FALLBACK_STATUSES: Final = frozenset({400, 404, 405, 501})


class RawFederationClient(Protocol):
    async def get_raw(
        self,
        destination: str,
        path: str,
        *,
        args: QueryArgs | None = None,
        sign: bool = True,
        request_timeout: float | None = None,
        max_response_bytes: int | None = None,
    ) -> TransportResponse: ...


@dataclass(frozen=True, slots=True)
class FetchedMedia:
    content_type: str
    upload_name: str | None
    body: bytes


def _bad_gateway(message: str = "Failed to fetch remote media") -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", message)


def _too_large() -> MatrixError:
    return MatrixError(502, "M_TOO_LARGE", "Remote media is too large")


def _is_unrecognized(e: FederationError) -> bool:
    """The server does not implement the authenticated federation media endpoint."""
    if e.status not in _FALLBACK_STATUSES:
        return False
    return e.errcode in (None, "M_UNRECOGNIZED")


def _map_error(e: FederationError) -> MatrixError:
    if e.status == 404:
        return not_found("Remote media not found")
    if e.errcode == "M_NOT_YET_UPLOADED":
        return MatrixError(
            504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded"
        )
    if e.status is None and ("exceeds" in e.message or "too large" in e.message):
        return _too_large()
    logger.info("remote media fetch from %s failed: %s", e.destination, e.message)
    return _bad_gateway()


class RemoteMediaFetcher:
    def __init__(
        self,
        client: RawFederationClient,
        location_fetcher: WebFetcher,
        *,
        max_bytes: int,
        timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._web = location_fetcher
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def fetch(self, origin: str, media_id: str, timeout_ms: int) -> FetchedMedia:
        path = federation_path("/_matrix/federation/v1/media/download/{}", media_id)
        try:
            response = await self._client.get_raw(
                origin,
                path,
                args={"timeout_ms": timeout_ms},
                request_timeout=self._timeout,
                max_response_bytes=self._max_bytes + _MULTIPART_OVERHEAD,
            )
        except FederationError as e:
            if not _is_unrecognized(e):
                raise _map_error(e) from None
            return await self._fetch_legacy(origin, media_id, timeout_ms)
        return await self._from_multipart(response)

    async def _fetch_legacy(
        self, origin: str, media_id: str, timeout_ms: int
    ) -> FetchedMedia:
        path = federation_path("/_matrix/media/v3/download/{}/{}", origin, media_id)
        try:
            response = await self._client.get_raw(
                origin,
                path,
                args={"allow_remote": "false", "timeout_ms": timeout_ms},
                sign=False,
                request_timeout=self._timeout,
                max_response_bytes=self._max_bytes,
            )
        except FederationError as e:
            raise _map_error(e) from None
        headers = response.headers or {}
        return FetchedMedia(
            normalize_content_type(headers.get("content-type")),
            filename_from_disposition(headers.get("content-disposition")),
            response.body,
        )

    async def _from_multipart(self, response: TransportResponse) -> FetchedMedia:
        headers = response.headers or {}
        try:
            part = parse_media_multipart(
                response.body, boundary_of(headers.get("content-type"))
            )
        except MultipartError as e:
            logger.info("bad multipart media response: %s", e)
            raise _bad_gateway("Remote server sent a malformed response") from None
        if part.location is not None:
            return await self._fetch_location(part.location)
        if len(part.body) > self._max_bytes:
            raise _too_large()
        return FetchedMedia(
            normalize_content_type(part.content_type),
            filename_from_disposition(part.content_disposition),
            part.body,
        )

    async def _fetch_location(self, url: str) -> FetchedMedia:
        try:
            got = await self._web.get(url, max_bytes=self._max_bytes)
        except ResponseTooLargeError:
            raise _too_large() from None
        except WebFetchError as e:
            logger.info("fetching remote media from %s failed: %s", url, e)
            raise _bad_gateway() from None
        if got.status != 200:
            raise _bad_gateway()
        return FetchedMedia(
            normalize_content_type(got.content_type),
            filename_from_disposition(got.headers.get("content-disposition")),
            got.body,
        )


class RemoteMediaCache:
    def __init__(
        self,
        store: MediaStore,
        files: MediaFiles,
        fetcher: RemoteMediaFetcher,
        clock: Clock,
    ) -> None:
        self._store = store
        self._files = files
        self._fetcher = fetcher
        self._clock = clock
        self._locks = KeyedLock()

    async def get(self, origin: str, media_id: str, timeout_ms: int) -> RemoteMedia:
        cached = await self._cached(origin, media_id)
        if cached is not None:
            return cached
        async with self._locks.lock((origin, media_id)):
            cached = await self._cached(origin, media_id)
            if cached is not None:
                return cached
            fetched = await self._fetcher.fetch(origin, media_id, timeout_ms)
            pending = await self._files.receive_bytes(fetched.body)
            now = self._clock.time_msec()
            row = RemoteMedia(
                origin=origin,
                media_id=media_id,
                content_type=fetched.content_type,
                upload_name=fetched.upload_name,
                size=pending.size,
                sha256=pending.sha256,
                created_ts=now,
                last_access_ts=now,
            )
            async with self._files.lock(pending.sha256):
                await self._files.commit(pending)
                await self._store.store_remote_media(row)
            return row

    async def _cached(self, origin: str, media_id: str) -> RemoteMedia | None:
        row = await self._store.get_remote_media(origin, media_id)
        if row is None:
            return None
        if row.quarantined:
            raise not_found("Media not found")
        if not self._files.exists(row.sha256):
            return None  # lost from disk: fetch it again
        now = self._clock.time_msec()
        if now - row.last_access_ts > _TOUCH_INTERVAL_MS:
            await self._store.touch_remote_media(origin, media_id, now)
        return row
