"""MatrixRTC foci (MSC4143) and support contacts (MSC1929) from the config, served by
`/rtc/transports` and the well-known documents. No client library here has calls for
these, so the tests speak HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.rooms import make_user, rooms_server

FOCUS = "https://livekit-jwt.example.com"
TRANSPORTS = (
    "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
    "/_matrix/client/v1/rtc/transports",
)


async def _get(base_url: str, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as s,
        s.get(base_url + path, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_configured_foci_and_support(tmp_path: Path) -> None:
    overrides = {
        "matrix_rtc": {"livekit_service_urls": [FOCUS + "/"]},
        "server_support": {
            "contacts": [
                {"role": "m.role.admin", "matrix_id": "@admin:localhost"},
                {"role": "m.role.security", "email_address": "sec@example.com"},
            ],
            "page": "https://example.com/help",
        },
    }
    async with rooms_server(tmp_path, overrides=overrides) as (hs, api):
        alice = await make_user(api, "alice")
        focus = {"type": "livekit", "livekit_service_url": FOCUS}
        for path in TRANSPORTS:
            assert await _get(hs.base_url, path, alice.token) == (
                200,
                {"rtc_transports": [focus]},
            )
            status, body = await _get(hs.base_url, path)
            assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        status, client = await _get(hs.base_url, "/.well-known/matrix/client")
        assert status == 200
        assert client["org.matrix.msc4143.rtc_foci"] == [focus]
        assert await _get(hs.base_url, "/.well-known/matrix/support") == (
            200,
            {
                "contacts": [
                    {"role": "m.role.admin", "matrix_id": "@admin:localhost"},
                    {"role": "m.role.security", "email_address": "sec@example.com"},
                ],
                "support_page": "https://example.com/help",
            },
        )


async def test_unconfigured(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api):
        alice = await make_user(api, "alice")
        assert await _get(hs.base_url, TRANSPORTS[0], alice.token) == (
            200,
            {"rtc_transports": []},
        )
        status, client = await _get(hs.base_url, "/.well-known/matrix/client")
        assert "org.matrix.msc4143.rtc_foci" not in client
        status, body = await _get(hs.base_url, "/.well-known/matrix/support")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
