"""Server discovery documents.

    GET /.well-known/matrix/client    (plus MSC4143's `org.matrix.msc4143.rtc_foci`)
    GET /.well-known/matrix/server
    GET /.well-known/matrix/support   (spec v1.10, MSC1929; 404 when unconfigured)

Spec: C-S API > Server Discovery > Well-known URIs; S-S API > Server discovery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ranvier.api.client.rtc import livekit_foci
from ranvier.api.http import AuthMode, Endpoint, MatrixRequest


class WellKnownResource:
    def __init__(
        self,
        public_baseurl: str,
        federation_authority: str | None,
        *,
        livekit_service_urls: Sequence[str] = (),
        support_contacts: Sequence[Mapping[str, str]] = (),
        support_page: str | None = None,
    ) -> None:
        self._client: dict[str, Any] = {
            "m.homeserver": {"base_url": public_baseurl.rstrip("/") + "/"}
        }
        if livekit_service_urls:
            self._client["org.matrix.msc4143.rtc_foci"] = livekit_foci(
                livekit_service_urls
            )
        self._server = (
            {"m.server": federation_authority} if federation_authority else None
        )
        support: dict[str, Any] = {}
        if support_contacts:
            support["contacts"] = [dict(c) for c in support_contacts]
        if support_page is not None:
            support["support_page"] = support_page
        self._support = support or None

    async def get_client(self, _req: MatrixRequest) -> dict[str, Any]:
        return self._client

    async def get_server(self, _req: MatrixRequest) -> Any:
        if self._server is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "No server delegation."}
        return self._server

    async def get_support(self, _req: MatrixRequest) -> Any:
        if self._support is None:
            return 404, {
                "errcode": "M_NOT_FOUND",
                "error": "No support information is configured.",
            }
        return self._support

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                ("/.well-known/matrix/client",),
                self.get_client,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "GET",
                ("/.well-known/matrix/server",),
                self.get_server,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "GET",
                ("/.well-known/matrix/support",),
                self.get_support,
                auth=AuthMode.NONE,
            ),
        ]
