"""What aiohttp refuses before any handler runs comes back as Matrix JSON without
echoing the request; HEAD answers like GET; malformed IDs and huge integers get the
precise error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from mautrix.api import HTTPAPI, Method
from mautrix.errors import MatrixStandardRequestError

from ranvier.api.http_transport import MAX_HEADER_FIELD_BYTES, MAX_REQUEST_LINE_BYTES
from tests.helpers.rooms import make_user, q, rooms_server

SECRET = "s3cr3t-token-value"


async def _raw(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "errcode"),
    [
        (
            b"GET /_matrix/client/v3/profile/"
            + SECRET.encode() * (MAX_REQUEST_LINE_BYTES // len(SECRET))
            + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "M_TOO_LARGE",
        ),
        (
            b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + SECRET.encode() * (MAX_HEADER_FIELD_BYTES // len(SECRET) + 1)
            + b"\r\n\r\n",
            431,
            "M_TOO_LARGE",
        ),
        (
            b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, SECRET.encode()) for i in range(200))
            + b"\r\n",
            431,
            "M_TOO_LARGE",
        ),
        (
            b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Probe: "
            + SECRET.encode()
            + b"\x00\r\n\r\n",
            400,
            "M_UNKNOWN",
        ),
    ],
    ids=["long-url", "long-header", "many-headers", "nul-in-header"],
)
async def test_parser_errors_are_matrix_json(
    tmp_path: Path, request_bytes: bytes, status: int, errcode: str
) -> None:
    async with rooms_server(tmp_path) as (hs, _):
        got, headers, body = await _raw(hs.base_url, request_bytes)
        assert got == status
        assert headers["content-type"].startswith("application/json")
        assert orjson.loads(body)["errcode"] == errcode
        assert SECRET.encode() not in body


async def test_head_answers_like_get(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api):
        alice = await make_user(api, "alice")
        for path, token in (
            ("/_matrix/client/versions", None),
            (f"/_matrix/client/v3/profile/{q(alice.user_id)}", None),
            ("/_matrix/client/v3/account/whoami", alice.token),
        ):
            async with api.session.get(hs.base_url + path, headers=_auth(token)) as get:
                get_body = await get.read()
            async with api.session.head(
                hs.base_url + path, headers=_auth(token)
            ) as head:
                assert head.status == get.status == 200, path
                assert await head.read() == b""
                assert int(head.headers["Content-Length"]) == len(get_body)
        async with api.session.head(
            hs.base_url + "/_matrix/client/v3/account/whoami"
        ) as head:
            assert head.status == 401


def _auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def test_profile_of_a_non_user_id_is_invalid_param(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api):
        mx = HTTPAPI(hs.base_url, client_session=api.session)
        for path in ("/profile/notauser", "/profile/notauser/displayname"):
            with pytest.raises(MatrixStandardRequestError) as err:
                await mx.request(Method.GET, "/_matrix/client/v3" + path)
            assert (err.value.http_status, err.value.errcode) == (
                400,
                "M_INVALID_PARAM",
            )
        status, out = await api.call("GET", "/profile/@nobody:localhost")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")


async def test_huge_integers_are_out_of_range_not_floats(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room = await alice.create_room()
        huge = b'{"msgtype": "m.text", "body": "x", "n": 99999999999999999999}'
        status, out = await _send_raw(alice.token, api, room, huge)
        assert (status, out["errcode"]) == (400, "M_BAD_JSON"), out
        assert "integer out of range" in out["error"], out
        status, out = await _send_raw(
            alice.token, api, room, b'{"msgtype": "m.text", "body": "x", "n": 1.5}'
        )
        assert "float" in out["error"], out
        status, out = await api.call(
            "POST",
            "/publicRooms",
            token=alice.token,
            data=b'{"limit": 99999999999999999999}',
        )
        assert (status, out["errcode"]) == (400, "M_BAD_JSON"), out
        assert "integer out of range" in out["error"], out


async def _send_raw(
    token: str, api: Any, room_id: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    result: tuple[int, dict[str, Any]] = await api.call(
        "PUT",
        f"/rooms/{q(room_id)}/send/m.room.message/t1",
        token=token,
        data=body,
    )
    return result
