"""The media repository through the real server: uploads, downloads, the headers that
keep media from running in a browser, asynchronous uploads, config and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from ranvier.app.homeserver import Homeserver
from tests.helpers import homeserver as test_hs
from tests.helpers.accounts import accounts_server
from tests.helpers.media import (
    LEGACY_MEDIA,
    V1_MEDIA,
    anonymous,
    mxc_path,
    request,
    upload,
)
from tests.helpers.sync import new_user

CSP = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)


def _media_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


async def test_upload_download_round_trip_with_security_headers(
    tmp_path: Path,
) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, b"hello media", "text/plain", "notes.txt")
        assert uri.startswith("mxc://localhost/")

        got = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
        assert got.status == 200
        assert got.body == b"hello media"
        assert got.headers["Content-Type"].startswith("text/plain")
        assert got.headers["Content-Security-Policy"] == CSP
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert got.headers["Content-Disposition"] == 'inline; filename="notes.txt"'

        # The file name in the path overrides the uploaded one.
        named = await request(
            alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}/r%C3%A9sum%C3%A9.txt"
        )
        assert named.status == 200
        assert named.headers["Content-Disposition"] == (
            "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
        )

        # The deprecated unauthenticated download still works.
        legacy = await anonymous(
            api.session, "GET", f"{hs.base_url}{LEGACY_MEDIA}/download/{mxc_path(uri)}"
        )
        assert legacy.status == 200
        assert legacy.body == b"hello media"
        assert legacy.headers["Content-Security-Policy"] == CSP

        # Range requests.
        part = await request(
            alice,
            "GET",
            f"{V1_MEDIA}/download/{mxc_path(uri)}",
            headers={"Range": "bytes=6-10"},
        )
        assert part.status == 206
        assert part.body == b"media"


async def test_dangerous_types_are_attachments(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        for ctype, body in (
            ("text/html", b"<script>alert(1)</script>"),
            ("image/svg+xml", b"<svg onload='alert(1)'/>"),
            ("application/javascript", b"alert(1)"),
        ):
            uri = await upload(alice, body, ctype, "x")
            got = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
            assert got.status == 200
            assert got.headers["Content-Type"] == ctype
            assert got.headers["Content-Disposition"] == 'attachment; filename="x"'
            assert got.headers["X-Content-Type-Options"] == "nosniff"
        # No file name: still a disposition; a garbage type becomes octet-stream.
        uri = await upload(alice, b"?", "not a type")
        got = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["Content-Disposition"] == "attachment"


async def test_authenticated_endpoints_need_a_token(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, b"secret", "text/plain")
        for path in (
            f"{V1_MEDIA}/download/{mxc_path(uri)}",
            f"{V1_MEDIA}/thumbnail/{mxc_path(uri)}?width=32&height=32",
            f"{V1_MEDIA}/config",
            f"{LEGACY_MEDIA}/config",
        ):
            got = await anonymous(api.session, "GET", hs.base_url + path)
            assert got.status == 401, path
            assert got.json()["errcode"] == "M_MISSING_TOKEN"
        async with api.session.post(
            hs.base_url + LEGACY_MEDIA + "/upload", data=b"x"
        ) as r:
            assert r.status == 401
        async with api.session.post(hs.base_url + "/_matrix/media/v1/create") as r:
            assert r.status == 401


async def test_config(tmp_path: Path) -> None:
    overrides = {"media": {"max_upload_size": "5M"}}
    async with accounts_server(tmp_path, overrides=overrides) as (_hs, api):
        alice = await new_user(api, "alice")
        for path in (f"{V1_MEDIA}/config", f"{LEGACY_MEDIA}/config"):
            got = await request(alice, "GET", path)
            assert got.status == 200
            assert got.json() == {"m.upload.size": 5 << 20}


async def test_upload_size_limit(tmp_path: Path) -> None:
    overrides = {
        "media": {"max_upload_size": "64K"},
        # Uploads are not bound by the JSON body limit, which is smaller here.
        "limits": {"max_request_body_size": "16K"},
    }
    async with accounts_server(tmp_path, overrides=overrides) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, b"a" * (60 << 10))
        got = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
        assert len(got.body) == 60 << 10

        too_big = await request(
            alice, "POST", LEGACY_MEDIA + "/upload", data=b"b" * ((64 << 10) + 1)
        )
        assert too_big.status == 413
        assert too_big.json()["errcode"] == "M_TOO_LARGE"

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"c" * 8192

        # No Content-Length: the limit holds while streaming.
        streamed = await request(
            alice, "POST", LEGACY_MEDIA + "/upload", data=chunked()
        )
        assert streamed.status == 413
        assert streamed.json()["errcode"] == "M_TOO_LARGE"
        # Nothing half-written is left behind.
        tmp_dir = hs.data_dir / "media" / "tmp"
        assert not tmp_dir.exists() or list(tmp_dir.iterdir()) == []


async def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        first = await upload(alice, b"same bytes", "text/plain", "a.txt")
        second = await upload(bob, b"same bytes", "text/plain", "b.txt")
        assert first != second
        content = [
            p for p in (hs.data_dir / "media" / "content").rglob("*") if p.is_file()
        ]
        assert len(content) == 1
        a = await request(bob, "GET", f"{V1_MEDIA}/download/{mxc_path(first)}")
        b = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(second)}")
        assert a.body == b.body == b"same bytes"
        assert 'filename="a.txt"' in a.headers["Content-Disposition"]
        assert 'filename="b.txt"' in b.headers["Content-Disposition"]


async def test_async_upload(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        created = await request(alice, "POST", "/_matrix/media/v1/create")
        assert created.status == 200
        uri = created.json()["content_uri"]
        assert created.json()["unused_expires_at"] > 0
        path = mxc_path(uri)

        not_yet = await request(
            alice, "GET", f"{V1_MEDIA}/download/{path}?timeout_ms=0"
        )
        assert not_yet.status == 504
        assert not_yet.json()["errcode"] == "M_NOT_YET_UPLOADED"

        # A download waiting for the upload is answered once it arrives.
        waiting = asyncio.ensure_future(
            request(alice, "GET", f"{V1_MEDIA}/download/{path}?timeout_ms=20000")
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()

        stolen = await request(
            bob, "PUT", f"{LEGACY_MEDIA}/upload/{path}", data=b"mine",
            headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        assert stolen.status == 403
        assert stolen.json()["errcode"] == "M_FORBIDDEN"

        put = await request(
            alice, "PUT", f"{LEGACY_MEDIA}/upload/{path}?filename=late.txt",
            data=b"late bytes", headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        assert put.status == 200
        assert put.json() == {}
        got = await asyncio.wait_for(waiting, 15)
        assert got.status == 200
        assert got.body == b"late bytes"
        assert 'filename="late.txt"' in got.headers["Content-Disposition"]

        again = await request(alice, "PUT", f"{LEGACY_MEDIA}/upload/{path}", data=b"x")
        assert again.status == 409
        assert again.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"

        unknown = await request(
            alice, "PUT", f"{LEGACY_MEDIA}/upload/localhost/nosuchmedia", data=b"x"
        )
        assert unknown.status == 404
        assert unknown.json()["errcode"] == "M_NOT_FOUND"
        other_server = await request(
            alice, "PUT", f"{LEGACY_MEDIA}/upload/elsewhere.test/abc", data=b"x"
        )
        assert other_server.status == 404


async def test_pending_uploads_are_limited(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        statuses = [
            (await request(alice, "POST", "/_matrix/media/v1/create")).status
            for _ in range(11)
        ]
        assert statuses[:10] == [200] * 10
        assert statuses[10] == 429


def _homeserver(hs: test_hs.TestHomeserver) -> Homeserver:
    return hs.running.homeserver


async def test_quarantined_and_missing_media_are_not_found(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, b"bad", "text/plain")
        media = _homeserver(hs).media
        assert media is not None
        assert await media.store.set_local_media_quarantined(_media_id(uri), True)
        got = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
        assert got.status == 404
        assert got.json()["errcode"] == "M_NOT_FOUND"


async def test_bad_input_gets_spec_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, b"x", "text/plain")
        cases: list[tuple[str, int, str]] = [
            (f"{V1_MEDIA}/download/localhost/doesnotexist", 404, "M_NOT_FOUND"),
            (f"{V1_MEDIA}/download/localhost/bad.id", 404, "M_NOT_FOUND"),
            (f"{V1_MEDIA}/download/bad%20server/abc", 400, "M_INVALID_PARAM"),
            (
                f"{V1_MEDIA}/download/{mxc_path(uri)}?timeout_ms=-1",
                400,
                "M_INVALID_PARAM",
            ),
            (
                f"{V1_MEDIA}/download/{mxc_path(uri)}?timeout_ms=abc",
                400,
                "M_INVALID_PARAM",
            ),
            (
                f"{LEGACY_MEDIA}/download/remote.test/abc?allow_remote=false",
                404,
                "M_NOT_FOUND",
            ),
            (
                f"{LEGACY_MEDIA}/download/remote.test/abc?allow_remote=maybe",
                400,
                "M_INVALID_PARAM",
            ),
        ]
        for path, status, errcode in cases:
            got = await request(alice, "GET", path)
            assert (got.status, got.json()["errcode"]) == (status, errcode), path
        long_name = await request(
            alice,
            "POST",
            LEGACY_MEDIA + "/upload",
            data=b"x",
            params={"filename": "n" * 300},
        )
        assert long_name.status == 400
        assert long_name.json()["errcode"] == "M_INVALID_PARAM"
        nul = await request(
            alice,
            "POST",
            LEGACY_MEDIA + "/upload",
            data=b"x",
            params={"filename": "a\x00"},
        )
        assert nul.status == 400
        async with aiohttp.ClientSession() as session:
            got = await anonymous(
                session, "GET", f"{hs.base_url}{LEGACY_MEDIA}/download/localhost/nope"
            )
            assert got.status == 404
