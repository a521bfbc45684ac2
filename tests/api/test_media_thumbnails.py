"""Thumbnails through the real server: sizes and methods, formats, caching,
pre-generation, decompression-bomb protection and bad parameters."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.helpers.accounts import accounts_server
from tests.helpers.media import (
    LEGACY_MEDIA,
    V1_MEDIA,
    anonymous,
    image_size,
    make_image,
    mxc_path,
    request,
    upload,
)
from tests.helpers.sync import new_user


async def test_png_and_jpeg_thumbnails(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        png = await upload(alice, make_image(1000, 500, "PNG"), "image/png", "a.png")
        jpeg = await upload(alice, make_image(1200, 900, "JPEG"), "image/jpeg")

        async def thumb(uri: str, query: str) -> tuple[int, int, str]:
            got = await request(
                alice, "GET", f"{V1_MEDIA}/thumbnail/{mxc_path(uri)}?{query}"
            )
            assert got.status == 200, got.body
            assert got.headers["Content-Disposition"].startswith("inline")
            assert "sandbox" in got.headers["Content-Security-Policy"]
            assert got.headers["X-Content-Type-Options"] == "nosniff"
            w, h, fmt = image_size(got.body)
            assert got.headers["Content-Type"] == f"image/{fmt.lower()}"
            return w, h, fmt

        assert await thumb(png, "width=32&height=32&method=crop") == (32, 32, "PNG")
        assert await thumb(png, "width=96&height=96&method=crop") == (96, 96, "PNG")
        # Scale keeps the aspect ratio inside the box.
        assert await thumb(png, "width=320&height=240&method=scale") == (
            320,
            160,
            "PNG",
        )
        assert await thumb(png, "width=640&height=480") == (640, 320, "PNG")
        # A request between sizes gets the next larger one (spec: "may be larger").
        assert await thumb(png, "width=50&height=50&method=crop") == (96, 96, "PNG")
        assert await thumb(png, "width=400&height=300") == (640, 320, "PNG")
        # Larger than every size: the largest.
        assert await thumb(png, "width=2000&height=2000") == (800, 400, "PNG")
        assert await thumb(jpeg, "width=32&height=32&method=crop") == (32, 32, "JPEG")
        assert await thumb(jpeg, "width=800&height=600") == (800, 600, "JPEG")
        # Animated is only a preference: a still image is a valid answer.
        assert await thumb(png, "width=32&height=32&method=crop&animated=true") == (
            32,
            32,
            "PNG",
        )
        # The legacy endpoint needs no token.
        legacy = await anonymous(
            api.session,
            "GET",
            f"{hs.base_url}{LEGACY_MEDIA}/thumbnail/{mxc_path(png)}",
            params={"width": "32", "height": "32", "method": "crop"},
        )
        assert legacy.status == 200
        assert image_size(legacy.body)[:2] == (32, 32)


async def test_thumbnails_are_pregenerated_and_cached(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        uri = await upload(alice, make_image(700, 700, "PNG"), "image/png")
        media = hs.running.homeserver.media
        assert media is not None
        media_id = uri.rsplit("/", 1)[1]
        rows: list[object] = []
        for _ in range(100):
            rows = [
                await media.store.get_thumbnail("", media_id, w, h, m)
                for (w, h, m) in (
                    (32, 32, "crop"),
                    (96, 96, "crop"),
                    (320, 240, "scale"),
                    (640, 480, "scale"),
                    (800, 600, "scale"),
                )
            ]
            if all(rows):
                break
            await asyncio.sleep(0.05)
        assert all(rows), rows
        first = await request(
            alice, "GET", f"{V1_MEDIA}/thumbnail/{mxc_path(uri)}?width=90&height=90"
        )
        second = await request(
            alice, "GET", f"{V1_MEDIA}/thumbnail/{mxc_path(uri)}?width=90&height=90"
        )
        assert first.body == second.body
        assert image_size(first.body)[:2] == (240, 240)


async def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        # 36 megapixels of one colour: a few kB of PNG, 108 MB once decoded as RGB.
        bomb = make_image(6000, 6000, "PNG", mode="1")
        assert len(bomb) < 100_000
        uri = await upload(alice, bomb, "image/png")
        got = await request(
            alice, "GET", f"{V1_MEDIA}/thumbnail/{mxc_path(uri)}?width=32&height=32"
        )
        assert got.status == 413
        assert got.json()["errcode"] == "M_TOO_LARGE"
        # The original is still downloadable.
        full = await request(alice, "GET", f"{V1_MEDIA}/download/{mxc_path(uri)}")
        assert full.status == 200


async def test_thumbnail_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        image = await upload(alice, make_image(100, 100), "image/png")
        text = await upload(alice, b"just text", "text/plain")
        liar = await upload(alice, b"not really a png", "image/png")
        base = f"{V1_MEDIA}/thumbnail/{mxc_path(image)}"
        cases: list[tuple[str, int, str]] = [
            (f"{base}?height=32", 400, "M_MISSING_PARAM"),
            (f"{base}?width=32", 400, "M_MISSING_PARAM"),
            (f"{base}?width=0&height=32", 400, "M_INVALID_PARAM"),
            (f"{base}?width=-5&height=32", 400, "M_INVALID_PARAM"),
            (f"{base}?width=x&height=32", 400, "M_INVALID_PARAM"),
            (f"{base}?width=99999999&height=32", 400, "M_INVALID_PARAM"),
            (f"{base}?width=32&height=32&method=stretch", 400, "M_INVALID_PARAM"),
            (f"{base}?width=32&height=32&animated=perhaps", 400, "M_INVALID_PARAM"),
            (
                f"{V1_MEDIA}/thumbnail/{mxc_path(text)}?width=32&height=32",
                400,
                "M_UNKNOWN",
            ),
            (
                f"{V1_MEDIA}/thumbnail/{mxc_path(liar)}?width=32&height=32",
                400,
                "M_UNKNOWN",
            ),
            (
                f"{V1_MEDIA}/thumbnail/localhost/nothere?width=32&height=32",
                404,
                "M_NOT_FOUND",
            ),
        ]
        for path, status, errcode in cases:
            got = await request(alice, "GET", path)
            assert (got.status, got.json()["errcode"]) == (status, errcode), path
