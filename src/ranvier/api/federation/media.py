"""Our media, served to other servers.

    GET /_matrix/federation/v1/media/download/{mediaId}
    GET /_matrix/federation/v1/media/thumbnail/{mediaId}?width=…&height=…&method=…

Spec: Server-Server API > Content Repository. X-Matrix authenticated; the answer is
`multipart/mixed`: a JSON part (`{}`), then the bytes. Only media uploaded here is
served (never our cached copies of a third server's media), as in Synapse.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.api.media.serving import multipart_response, thumbnail_params, timeout_ms
from ranvier.services.media.repository import MediaRepository

__all__ = ["FederationMediaResource"]

V1 = "/_matrix/federation/v1/media"


class FederationMediaResource:
    def __init__(self, media: MediaRepository) -> None:
        self._media = media

    async def download(self, req: MatrixRequest) -> web.StreamResponse:
        served = await self._media.get_download(
            self._media.server_name,
            req.path_param("mediaId"),
            allow_remote=False,
            timeout_ms=timeout_ms(req),
        )
        return await multipart_response(req, served)

    async def thumbnail(self, req: MatrixRequest) -> web.StreamResponse:
        width, height, method = thumbnail_params(req)
        served = await self._media.get_thumbnail(
            self._media.server_name,
            req.path_param("mediaId"),
            width,
            height,
            method,
            allow_remote=False,
            timeout_ms=timeout_ms(req),
        )
        return await multipart_response(req, served, thumbnail=True)

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                (V1 + "/download/{mediaId}",),
                self.download,
                auth=AuthMode.SERVER,
            ),
            Endpoint(
                "GET",
                (V1 + "/thumbnail/{mediaId}",),
                self.thumbnail,
                auth=AuthMode.SERVER,
            ),
        ]
