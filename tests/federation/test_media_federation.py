"""Remote media between in-process servers: authenticated federation downloads
(multipart/mixed), thumbnails of remote images, the local cache, the fallback to the
legacy media API, `Location` redirects, size caps and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ranvier.app.homeserver import Homeserver
from ranvier.core.multipart import (
    boundary_of,
    multipart_head,
    multipart_tail,
    parse_media_multipart,
)
from ranvier.federation.client import federation_path
from tests.federation.fakes import RunningPeer, in_process_network, transport_of
from tests.helpers.accounts import Api
from tests.helpers.federation import running_federation
from tests.helpers.media import V1_MEDIA, image_size, make_image, request
from tests.helpers.sync import User, new_user


async def _upload(
    hs: Homeserver, user_id: str, data: bytes, ctype: str, name: str
) -> str:
    assert hs.media is not None

    async def body() -> AsyncIterator[bytes]:
        yield data

    return await hs.media.repository.upload(
        user_id, body(), content_type=ctype, filename=name, content_length=len(data)
    )


async def test_remote_download_thumbnail_and_cache(tmp_path: Path) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        hs1, hs2 = fed["hs1.test"], fed["hs2.test"]
        alice = await hs1.user("alice")
        bob = await hs2.user("bob")
        image = make_image(640, 320, "PNG")
        uri = await _upload(
            hs1.peer.homeserver, alice.user_id, image, "image/png", "p.png"
        )
        media_id = uri.rsplit("/", 1)[1]

        got = await request(bob, "GET", f"{V1_MEDIA}/download/hs1.test/{media_id}")
        assert got.status == 200, got.body
        assert got.body == image
        assert got.headers["Content-Type"] == "image/png"
        assert got.headers["Content-Disposition"] == 'inline; filename="p.png"'
        assert "sandbox" in got.headers["Content-Security-Policy"]

        thumb = await request(
            bob,
            "GET",
            f"{V1_MEDIA}/thumbnail/hs1.test/{media_id}?width=32&height=32&method=crop",
        )
        assert thumb.status == 200
        assert image_size(thumb.body) == (32, 32, "PNG")

        unknown = await request(bob, "GET", f"{V1_MEDIA}/download/hs1.test/nothere")
        assert unknown.status == 404
        assert unknown.json()["errcode"] == "M_NOT_FOUND"

        # Served from the cache once hs1 is out of reach.
        transport_of(hs2.peer).unregister("hs1.test")
        cached = await request(bob, "GET", f"{V1_MEDIA}/download/hs1.test/{media_id}")
        assert cached.status == 200
        assert cached.body == image
        gone = await request(bob, "GET", f"{V1_MEDIA}/download/hs1.test/other")
        assert gone.status == 502
        assert gone.json()["errcode"] == "M_UNKNOWN"


async def test_federation_media_endpoints(tmp_path: Path) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        hs1, hs2 = fed["hs1.test"], fed["hs2.test"]
        alice = await hs1.user("alice")
        data = b"some text for a remote server"
        uri = await _upload(
            hs1.peer.homeserver, alice.user_id, data, "text/plain", "t.txt"
        )
        media_id = uri.rsplit("/", 1)[1]
        path = federation_path("/_matrix/federation/v1/media/download/{}", media_id)

        async with (
            aiohttp.ClientSession() as session,
            session.get(hs1.base_url + path) as r,
        ):
            assert r.status == 401

        federation = hs2.peer.homeserver.federation
        assert federation is not None
        response = await federation.client.get_raw("hs1.test", path)
        headers = response.headers or {}
        part = parse_media_multipart(
            response.body, boundary_of(headers["content-type"])
        )
        assert part.body == data
        assert part.content_type == "text/plain"
        assert part.content_disposition == 'inline; filename="t.txt"'

        image = make_image(300, 300, "JPEG")
        img_uri = await _upload(
            hs1.peer.homeserver, alice.user_id, image, "image/jpeg", "i"
        )
        thumb_path = federation_path(
            "/_matrix/federation/v1/media/thumbnail/{}", img_uri.rsplit("/", 1)[1]
        )
        response = await federation.client.get_raw(
            "hs1.test", thumb_path, args={"width": 96, "height": 96, "method": "crop"}
        )
        headers = response.headers or {}
        part = parse_media_multipart(
            response.body, boundary_of(headers["content-type"])
        )
        assert part.content_type == "image/jpeg"
        assert image_size(part.body) == (96, 96, "JPEG")


# -- scripted remote servers ------------------------------------------------------------

Handler = Callable[[web.Request], Any]


@asynccontextmanager
async def fake_media_server(routes: dict[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{int(runner.addresses[0][1])}"
    finally:
        await runner.cleanup()


async def _unrecognized(_request: web.Request) -> web.Response:
    return web.json_response(
        {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, status=404
    )


async def _legacy_download(request: web.Request) -> web.Response:
    if request.query.get("allow_remote") != "false":
        return web.Response(status=400)
    if request.match_info["mediaId"] != "old":
        return web.json_response({"errcode": "M_NOT_FOUND", "error": "no"}, status=404)
    return web.Response(
        body=b"legacy bytes",
        headers={
            "Content-Type": "text/plain",
            "Content-Disposition": "attachment; filename*=utf-8''caf%C3%A9.txt",
        },
    )


def _multipart(part_headers: dict[str, str], body: bytes) -> web.Response:
    boundary = "b0undary"
    return web.Response(
        body=multipart_head(boundary, part_headers) + body + multipart_tail(boundary),
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
    )


@asynccontextmanager
async def two_servers(
    tmp_path: Path, hs2_overrides: dict[str, Any]
) -> AsyncIterator[tuple[RunningPeer, User]]:
    overrides = {
        "hs2.test": {
            "registration": {"enabled": True, "require_token": False},
            **hs2_overrides,
        }
    }
    async with (
        in_process_network(tmp_path, ["hs2.test"], overrides=overrides) as peers,
        aiohttp.ClientSession() as session,
    ):
        peer = peers["hs2.test"]
        bob = await new_user(Api(session, peer.base_url, "hs2.test"), "bob")
        yield peer, bob


async def test_fallback_to_the_legacy_media_api(tmp_path: Path) -> None:
    routes: dict[str, Handler] = {
        "/_matrix/federation/v1/media/download/{mediaId}": _unrecognized,
        "/_matrix/media/v3/download/legacy.test/{mediaId}": _legacy_download,
    }
    async with (
        fake_media_server(routes) as base,
        two_servers(tmp_path, {}) as (hs2, bob),
    ):
        transport_of(hs2).register("legacy.test", base)
        got = await request(bob, "GET", f"{V1_MEDIA}/download/legacy.test/old")
        assert got.status == 200, got.body
        assert got.body == b"legacy bytes"
        assert got.headers["Content-Disposition"] == (
            "inline; filename*=utf-8''caf%C3%A9.txt"
        )
        missing = await request(bob, "GET", f"{V1_MEDIA}/download/legacy.test/new")
        assert missing.status == 404
        assert missing.json()["errcode"] == "M_NOT_FOUND"


async def test_location_redirects_and_size_caps(tmp_path: Path) -> None:
    big = b"x" * (80 << 10)
    site: dict[str, str] = {}

    async def blob(_request: web.Request) -> web.Response:
        return web.Response(body=b"from a CDN", content_type="application/pdf")

    async def download(request: web.Request) -> web.Response:
        media_id = request.match_info["mediaId"]
        if media_id == "located":
            return _multipart({"Location": site["base"] + "/blob"}, b"")
        if media_id == "big":
            return _multipart({"Content-Type": "application/octet-stream"}, big)
        return web.Response(body=b"not multipart", content_type="text/plain")

    routes: dict[str, Handler] = {
        "/_matrix/federation/v1/media/download/{mediaId}": download,
        "/blob": blob,
    }
    hs2_overrides = {
        # The CDN of this test lives on loopback.
        "federation": {
            "trusted_key_servers": [],
            "ip_range_allowlist": ["127.0.0.1/32"],
        },
        "media": {"max_upload_size": "64K"},
    }
    async with (
        fake_media_server(routes) as base,
        two_servers(tmp_path, hs2_overrides) as (hs2, bob),
    ):
        site["base"] = base
        transport_of(hs2).register("cdn.test", base)
        located = await request(bob, "GET", f"{V1_MEDIA}/download/cdn.test/located")
        assert located.status == 200, located.body
        assert located.body == b"from a CDN"
        assert located.headers["Content-Type"] == "application/pdf"
        assert located.headers["Content-Disposition"] == "attachment"

        too_big = await request(bob, "GET", f"{V1_MEDIA}/download/cdn.test/big")
        assert too_big.status == 502
        assert too_big.json()["errcode"] == "M_TOO_LARGE"

        garbage = await request(bob, "GET", f"{V1_MEDIA}/download/cdn.test/junk")
        assert garbage.status == 502
        assert garbage.json()["errcode"] == "M_UNKNOWN"
