"""The HTTP edge on its own: routing errors, JSON errors, body limits, CORS, auth modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    HttpSettings,
    MatrixRequest,
    Requester,
    build_http_app,
)
from ranvier.core.errors import unknown_token
from ranvier.util.clock import FakeClock
from ranvier.util.ratelimit import Bucket, RateLimiter


class _Tokens:
    async def authenticate(
        self, access_token: str, client_ip: str | None = None
    ) -> Requester:
        if access_token == "user-token":
            return Requester("@alice:test", "DEV", is_guest=False)
        if access_token == "guest-token":
            return Requester("@1:test", "GDEV", is_guest=True)
        raise unknown_token()


async def _echo(req: MatrixRequest) -> dict[str, Any]:
    body = await req.json()
    return {"got": body.raw, "user": req.requester.user_id if req.requester else None}


async def _typed(req: MatrixRequest) -> dict[str, Any]:
    body = await req.json()
    return {"n": body.get_int("n"), "s": body.require_str("s")}


async def _boom(_req: MatrixRequest) -> dict[str, Any]:
    raise RuntimeError("internal detail that must not leak")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    eps = [
        Endpoint("POST", ("/_matrix/client/v3/echo",), _echo, auth=AuthMode.OPTIONAL),
        Endpoint("POST", ("/_matrix/client/v3/typed",), _typed, auth=AuthMode.NONE),
        Endpoint("POST", ("/_matrix/client/v3/user_only",), _echo, auth=AuthMode.USER),
        Endpoint(
            "POST", ("/_matrix/client/v3/guest_ok",), _echo, auth=AuthMode.GUEST_OK
        ),
        Endpoint("GET", ("/_matrix/client/v3/boom",), _boom, auth=AuthMode.NONE),
        Endpoint(
            "POST",
            ("/_matrix/client/v3/limited",),
            _echo,
            auth=AuthMode.NONE,
            ratelimit="login",
        ),
    ]
    limiter = RateLimiter(FakeClock(), enabled=True)
    app = build_http_app(
        eps,
        authenticator=_Tokens(),
        limiter=limiter,
        settings=HttpSettings(
            max_body_size=1024, ratelimit_buckets={"login": Bucket(0.1, 2)}
        ),
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def _err(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    assert "traceback" not in str(body).lower()
    return resp.status, body["errcode"]


async def test_unknown_endpoint_is_m_unrecognized(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/_matrix/client/v3/nope")
    assert await _err(resp) == (404, "M_UNRECOGNIZED")


async def test_wrong_method_is_405_m_unrecognized(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/_matrix/client/v3/echo")
    assert await _err(resp) == (405, "M_UNRECOGNIZED")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1,", b"nul"])
async def test_bad_json_is_m_not_json(
    client: TestClient[Any, Any], body: bytes
) -> None:
    resp = await client.post("/_matrix/client/v3/echo", data=body)
    assert await _err(resp) == (400, "M_NOT_JSON")


async def test_non_object_json_is_rejected(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/_matrix/client/v3/echo", data=b"[1, 2]")
    assert await _err(resp) == (400, "M_NOT_JSON")


async def test_wrong_types_are_m_bad_json(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/_matrix/client/v3/typed", json={"n": "1", "s": "x"})
    assert await _err(resp) == (400, "M_BAD_JSON")
    resp = await client.post("/_matrix/client/v3/typed", json={"n": True, "s": "x"})
    assert await _err(resp) == (400, "M_BAD_JSON")
    resp = await client.post("/_matrix/client/v3/typed", json={"n": 1})
    assert await _err(resp) == (400, "M_MISSING_PARAM")
    resp = await client.post("/_matrix/client/v3/typed", json={"n": 1, "s": "x"})
    assert resp.status == 200
    assert await resp.json() == {"n": 1, "s": "x"}


async def test_oversized_body_is_m_too_large(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/_matrix/client/v3/echo", data=b'{"a":"' + b"x" * 5000 + b'"}'
    )
    assert await _err(resp) == (413, "M_TOO_LARGE")


async def test_handler_crash_is_500_without_details(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/_matrix/client/v3/boom")
    body = await resp.json()
    assert resp.status == 500
    assert body["errcode"] == "M_UNKNOWN"
    assert "internal detail" not in body["error"]


async def test_cors_headers_and_preflight(client: TestClient[Any, Any]) -> None:
    resp = await client.options(
        "/_matrix/client/v3/echo",
        headers={
            "Origin": "https://app.element.io",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert resp.status in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "PUT" in resp.headers["Access-Control-Allow-Methods"]
    resp = await client.get("/_matrix/client/v3/nope")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_auth_modes(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/_matrix/client/v3/user_only", json={})
    assert await _err(resp) == (401, "M_MISSING_TOKEN")
    resp = await client.post(
        "/_matrix/client/v3/user_only", json={}, headers={"Authorization": "Bearer bad"}
    )
    assert await _err(resp) == (401, "M_UNKNOWN_TOKEN")
    resp = await client.post(
        "/_matrix/client/v3/user_only",
        json={},
        headers={"Authorization": "Bearer guest-token"},
    )
    assert await _err(resp) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = await client.post(
        "/_matrix/client/v3/guest_ok",
        json={},
        headers={"Authorization": "Bearer guest-token"},
    )
    assert resp.status == 200
    assert (await resp.json())["user"] == "@1:test"
    # Deprecated query-parameter token still works.
    resp = await client.post(
        "/_matrix/client/v3/user_only?access_token=user-token", json={}
    )
    assert (await resp.json())["user"] == "@alice:test"
    # Optional auth: anonymous is fine, a bad token is not.
    resp = await client.post("/_matrix/client/v3/echo", json={"a": 1})
    assert (await resp.json()) == {"got": {"a": 1}, "user": None}


async def test_rate_limit_answers_429_with_retry_after(
    client: TestClient[Any, Any],
) -> None:
    statuses = []
    bodies = []
    for _ in range(3):
        resp = await client.post("/_matrix/client/v3/limited", json={})
        statuses.append(resp.status)
        bodies.append(await resp.json())
    assert statuses == [200, 200, 429]
    body = bodies[-1]
    assert body["errcode"] == "M_LIMIT_EXCEEDED"
    assert body["retry_after_ms"] > 0
