"""MatrixRTC transport discovery (MSC4143, for Element Call and Element X calls).

    GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports
    GET /_matrix/client/v1/rtc/transports

The operator's LiveKit foci (`matrix_rtc.livekit_service_urls`) as
`{"rtc_transports": [{"type": "livekit", "livekit_service_url": …}]}`, the same list
`/.well-known/matrix/client` carries as `org.matrix.msc4143.rtc_foci`. The `v1` path is
not in spec v1.19; matrix-rust-sdk (Element X) asks it first, as Tuwunel serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest

__all__ = ["RtcResource", "livekit_foci"]


def livekit_foci(service_urls: Sequence[str]) -> list[dict[str, str]]:
    """MSC4195's LiveKit focus objects for the configured JWT service URLs."""
    return [{"type": "livekit", "livekit_service_url": url} for url in service_urls]


class RtcResource:
    def __init__(self, livekit_service_urls: Sequence[str]) -> None:
        self._answer = {"rtc_transports": livekit_foci(livekit_service_urls)}

    async def get_transports(self, _req: MatrixRequest) -> dict[str, Any]:
        return self._answer

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                (
                    "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
                    "/_matrix/client/v1/rtc/transports",
                ),
                self.get_transports,
                auth=AuthMode.GUEST_OK,
            ),
        ]
