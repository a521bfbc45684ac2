"""URL previews through the real server, of pages served by a local aiohttp server:
OpenGraph parsing, og:image stored as media, caching, the IP blocklist (loopback is
refused unless allowlisted, redirects included) and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.helpers.accounts import accounts_server
from tests.helpers.media import V1_MEDIA, image_size, make_image, mxc_path, request
from tests.helpers.sync import User, new_user

PAGE = """<!doctype html><html><head>
<meta charset="utf-8">
<title>Ignored title</title>
<meta property="og:title" content="Tea &amp; Biscuits">
<meta property="og:description" content="All about tea.">
<meta property="og:image" content="/img.png">
<meta property="og:type" content="article">
</head><body><p>text</p></body></html>"""

PLAIN = """<html><head><title>  Only a
title </title><meta name="description" content="Described."></head></html>"""


@dataclass
class Site:
    base_url: str
    port: int
    hits: dict[str, int] = field(default_factory=dict)


@asynccontextmanager
async def local_site() -> AsyncIterator[Site]:
    hits: dict[str, int] = {}
    image = make_image(120, 60, "PNG")

    def count(request: web.Request) -> None:
        hits[request.path] = hits.get(request.path, 0) + 1

    async def page(request: web.Request) -> web.Response:
        count(request)
        return web.Response(text=PAGE, content_type="text/html")

    async def plain(request: web.Request) -> web.Response:
        count(request)
        return web.Response(text=PLAIN, content_type="text/html")

    async def img(request: web.Request) -> web.Response:
        count(request)
        return web.Response(body=image, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        count(request)
        raise web.HTTPFound(request.query.get("to", "/page"))

    async def missing(request: web.Request) -> web.Response:
        count(request)
        return web.Response(status=404, text="no")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/plain", plain)
    app.router.add_get("/img.png", img)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        yield Site(f"http://127.0.0.1:{port}", port, hits)
    finally:
        await runner.cleanup()


def _preview_config(allow_loopback: bool) -> dict[str, Any]:
    preview: dict[str, Any] = {"enabled": True}
    if allow_loopback:
        preview["ip_range_allowlist"] = ["127.0.0.1/32"]
    return {"media": {"url_preview": preview}}


async def _preview(user: User, url: str) -> tuple[int, Any]:
    got = await request(
        user, "GET", f"{V1_MEDIA}/preview_url", params={"url": url, "ts": "0"}
    )
    return got.status, got.json()


async def test_preview_of_a_local_page(tmp_path: Path) -> None:
    async with (
        local_site() as site,
        accounts_server(tmp_path, overrides=_preview_config(True)) as (_hs, api),
    ):
        alice = await new_user(api, "alice")
        status, og = await _preview(alice, site.base_url + "/page#section")
        assert status == 200, og
        assert og["og:title"] == "Tea & Biscuits"
        assert og["og:description"] == "All about tea."
        assert og["og:type"] == "article"
        assert og["og:image"].startswith("mxc://localhost/")
        assert og["og:image:type"] == "image/png"
        assert og["og:image:width"] == 120
        assert og["og:image:height"] == 60
        image = await request(
            alice, "GET", f"{V1_MEDIA}/download/{mxc_path(og['og:image'])}"
        )
        assert image.status == 200
        assert og["matrix:image:size"] == len(image.body)
        assert image_size(image.body) == (120, 60, "PNG")

        # Cached: the page is not fetched again (the fragment is not part of the key).
        status, again = await _preview(alice, site.base_url + "/page")
        assert status == 200
        assert again == og
        assert site.hits["/page"] == 1

        # Fallbacks to <title> and the description meta tag; redirects are followed.
        status, plain = await _preview(alice, site.base_url + "/redirect?to=/plain")
        assert status == 200
        assert plain == {"og:title": "Only a title", "og:description": "Described."}

        # An image URL previews as the image.
        status, direct = await _preview(alice, site.base_url + "/img.png")
        assert status == 200
        assert direct["og:image"].startswith("mxc://")
        assert direct["og:image:width"] == 120

        status, err = await _preview(alice, site.base_url + "/missing")
        assert status == 502
        assert err["errcode"] == "M_UNKNOWN"


async def test_loopback_is_refused_without_the_allowlist(tmp_path: Path) -> None:
    async with (
        local_site() as site,
        accounts_server(tmp_path, overrides=_preview_config(False)) as (_hs, api),
    ):
        alice = await new_user(api, "alice")
        for url in (
            site.base_url + "/page",
            f"http://localhost:{site.port}/page",
            f"http://[::1]:{site.port}/page",
            f"http://[::ffff:127.0.0.1]:{site.port}/page",
        ):
            status, err = await _preview(alice, url)
            assert status == 403, (url, err)
            assert err["errcode"] == "M_UNKNOWN"
        assert site.hits == {}


async def test_redirect_to_a_blocked_address_is_refused(tmp_path: Path) -> None:
    async with (
        local_site() as site,
        accounts_server(tmp_path, overrides=_preview_config(True)) as (_hs, api),
    ):
        alice = await new_user(api, "alice")
        status, err = await _preview(
            alice,
            site.base_url + "/redirect?to=http://169.254.169.254/latest/meta-data",
        )
        assert status == 403, err
        assert site.hits == {"/redirect": 1}


async def test_previews_disabled_and_bad_input(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        status, err = await _preview(alice, "https://example.com/")
        assert status == 404
        assert err["errcode"] == "M_UNRECOGNIZED"
    async with accounts_server(
        tmp_path / "enabled", overrides=_preview_config(False)
    ) as (hs, api):
        alice = await new_user(api, "alice")
        for url, errcode in (
            ("", "M_MISSING_PARAM"),
            ("ftp://example.com/file", "M_INVALID_PARAM"),
            ("javascript:alert(1)", "M_INVALID_PARAM"),
            ("http://", "M_INVALID_PARAM"),
            ("http://example.com:99999/", "M_INVALID_PARAM"),
            ("https://example.com/" + "a" * 3000, "M_INVALID_PARAM"),
        ):
            status, err = await _preview(alice, url)
            assert (status, err["errcode"]) == (400, errcode), url
        missing = await request(alice, "GET", f"{V1_MEDIA}/preview_url")
        assert missing.status == 400
        bad_ts = await request(
            alice,
            "GET",
            f"{V1_MEDIA}/preview_url",
            params={"url": "https://example.com/", "ts": "soon"},
        )
        assert bad_ts.status == 400
        async with api.session.get(
            hs.base_url + f"{V1_MEDIA}/preview_url?url=https://example.com/"
        ) as r:
            assert r.status == 401
