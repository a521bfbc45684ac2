"""The content repository's client endpoints.

Authenticated media (resource `client`):

    GET  /_matrix/client/v1/media/config
    GET  /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
    GET  /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
    GET  /_matrix/client/v1/media/preview_url          (only when previews are enabled)

Legacy media API (resource `media`; `r0` aliases too):

    POST /_matrix/media/v3/upload
    PUT  /_matrix/media/v3/upload/{serverName}/{mediaId}
    POST /_matrix/media/v1/create
    GET  /_matrix/media/v3/config
    GET  /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]   (no auth)
    GET  /_matrix/media/v3/thumbnail/{serverName}/{mediaId}               (no auth)
    GET  /_matrix/media/v3/preview_url                 (only when previews are enabled)

Spec: Client-Server API > Content repository. Uploads are read from the request
stream here (not through the edge's body-size limit, which is for JSON) and the upload
limit is enforced while reading. The deprecated unauthenticated downloads are still
served (as Synapse does for media from before its freeze; Ranvier has no such freeze).
When URL previews are disabled their endpoints do not exist (404 `M_UNRECOGNIZED`), as
in Synapse.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.api.media.serving import (
    UPLOAD_CHUNK,
    file_response,
    thumbnail_params,
    timeout_ms,
)
from ranvier.services.media.preview import UrlPreviewService
from ranvier.services.media.repository import MediaRepository

__all__ = ["MediaResource"]

CLIENT_V1 = "/_matrix/client/v1/media"
LEGACY = ("/_matrix/media/v3", "/_matrix/media/r0")


def _legacy(suffix: str) -> tuple[str, ...]:
    return tuple(prefix + suffix for prefix in LEGACY)


def _with_filename(paths: tuple[str, ...]) -> tuple[str, ...]:
    return paths + tuple(p + "/{fileName}" for p in paths)


class MediaResource:
    def __init__(
        self, media: MediaRepository, previews: UrlPreviewService | None
    ) -> None:
        self._media = media
        self._previews = previews

    # -- uploads -------------------------------------------------------------------
    async def upload(self, req: MatrixRequest) -> dict[str, Any]:
        uri = await self._media.upload(
            req.user.user_id,
            req.raw.content.iter_chunked(UPLOAD_CHUNK),
            content_type=req.raw.headers.get("Content-Type"),
            filename=req.query.get("filename"),
            content_length=req.raw.content_length,
        )
        return {"content_uri": uri}

    async def upload_to(self, req: MatrixRequest) -> dict[str, Any]:
        await self._media.upload_to_media(
            req.user.user_id,
            req.path_param("serverName"),
            req.path_param("mediaId"),
            req.raw.content.iter_chunked(UPLOAD_CHUNK),
            content_type=req.raw.headers.get("Content-Type"),
            filename=req.query.get("filename"),
            content_length=req.raw.content_length,
        )
        return {}

    async def create(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._media.create_media(req.user.user_id)

    async def config(self, _req: MatrixRequest) -> dict[str, Any]:
        return self._media.get_config()

    # -- downloads -----------------------------------------------------------------
    async def download(self, req: MatrixRequest) -> web.StreamResponse:
        served = await self._media.get_download(
            req.path_param("serverName"),
            req.path_param("mediaId"),
            allow_remote=req.query_bool("allow_remote", True),
            timeout_ms=timeout_ms(req),
        )
        return file_response(served, req.raw.match_info.get("fileName"))

    async def thumbnail(self, req: MatrixRequest) -> web.StreamResponse:
        width, height, method = thumbnail_params(req)
        served = await self._media.get_thumbnail(
            req.path_param("serverName"),
            req.path_param("mediaId"),
            width,
            height,
            method,
            allow_remote=req.query_bool("allow_remote", True),
            timeout_ms=timeout_ms(req),
        )
        return file_response(served, thumbnail=True)

    async def preview_url(self, req: MatrixRequest) -> dict[str, Any]:
        assert self._previews is not None
        # `ts` asks for a preview as of a time; we keep only the latest one, which
        # the spec allows ("the server may return a newer version").
        req.query_int("ts", minimum=0)
        return await self._previews.get_preview(req.user.user_id, req.query.get("url"))

    # -- endpoint tables -------------------------------------------------------------
    def _previews_endpoint(self, paths: tuple[str, ...]) -> list[Endpoint]:
        if self._previews is None:
            return []
        return [Endpoint("GET", paths, self.preview_url, auth=AuthMode.USER)]

    def client_endpoints(self) -> list[Endpoint]:
        """Authenticated media, under `/_matrix/client/v1/media`."""
        download = _with_filename((CLIENT_V1 + "/download/{serverName}/{mediaId}",))
        return [
            Endpoint(
                "GET", (CLIENT_V1 + "/config",), self.config, auth=AuthMode.GUEST_OK
            ),
            Endpoint("GET", download, self.download, auth=AuthMode.GUEST_OK),
            Endpoint(
                "GET",
                (CLIENT_V1 + "/thumbnail/{serverName}/{mediaId}",),
                self.thumbnail,
                auth=AuthMode.GUEST_OK,
            ),
            *self._previews_endpoint((CLIENT_V1 + "/preview_url",)),
        ]

    def media_endpoints(self) -> list[Endpoint]:
        """The `/_matrix/media` API: uploads, and the deprecated downloads."""
        return [
            Endpoint("POST", _legacy("/upload"), self.upload, auth=AuthMode.USER),
            Endpoint(
                "PUT",
                _legacy("/upload/{serverName}/{mediaId}"),
                self.upload_to,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "POST", ("/_matrix/media/v1/create",), self.create, auth=AuthMode.USER
            ),
            Endpoint("GET", _legacy("/config"), self.config, auth=AuthMode.GUEST_OK),
            Endpoint(
                "GET",
                _with_filename(_legacy("/download/{serverName}/{mediaId}")),
                self.download,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "GET",
                _legacy("/thumbnail/{serverName}/{mediaId}"),
                self.thumbnail,
                auth=AuthMode.NONE,
            ),
            *self._previews_endpoint(_legacy("/preview_url")),
        ]
