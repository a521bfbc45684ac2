"""Helpers for media tests: images made with Pillow, and raw media requests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from PIL import Image

from tests.helpers.sync import User

V1_MEDIA = "/_matrix/client/v1/media"
LEGACY_MEDIA = "/_matrix/media/v3"


def make_image(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    img = Image.new(mode, (width, height), color=0 if mode == "1" else (200, 30, 90))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int, str]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size[0], img.size[1], img.format or ""


@dataclass
class Fetched:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(
    user: User,
    method: str,
    path: str,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Fetched:
    """A media request with `user`'s token; `path` is absolute on their server."""
    all_headers = {**(headers or {}), "Authorization": f"Bearer {user.token}"}
    async with user.api.session.request(
        method, user.api.base_url + path, data=data, headers=all_headers, params=params
    ) as r:
        return Fetched(r.status, r.headers, await r.read())


async def anonymous(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Fetched:
    async with session.request(method, url, headers=headers, params=params) as r:
        return Fetched(r.status, r.headers, await r.read())


async def upload(
    user: User,
    data: bytes,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> str:
    params = {"filename": filename} if filename is not None else None
    got = await request(
        user,
        "POST",
        LEGACY_MEDIA + "/upload",
        data=data,
        headers={"Content-Type": content_type},
        params=params,
    )
    assert got.status == 200, got.body
    uri: str = got.json()["content_uri"]
    assert uri.startswith("mxc://")
    return uri


def mxc_path(uri: str) -> str:
    """`mxc://server/id` → `server/id`."""
    return uri[len("mxc://") :]
