"""Inbound X-Matrix authentication through the real HTTP edge, with keys fetched from a
real Ranvier peer; plus the federation version endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    HttpSettings,
    MatrixRequest,
    build_http_app,
)
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.json import encode_canonical_json
from ranvier.federation.client import federation_path
from ranvier.federation.errors import FederationError
from ranvier.federation.xmatrix import sign_request
from tests.federation.fakes import RunningPeer, in_process_network, transport_of
from tests.federation.test_keyring import fed

PATH = "/_matrix/federation/v1/echo/{}"


async def echo(req: MatrixRequest) -> dict[str, Any]:
    body = await req.json_any() if req.raw.body_exists else None
    return {
        "origin": req.origin,
        "param": req.path_param("param"),
        "query": sorted(req.query.items()),
        "body": body,
    }


@dataclass
class Setup:
    a: RunningPeer
    b: RunningPeer
    url: str
    uri_base: str


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """`b.test` answers with an app whose only endpoint needs X-Matrix, verified by
    B's authenticator (and B's keyring, which fetches A's keys from the real A)."""
    async with in_process_network(tmp_path, ["a.test", "b.test"]) as peers:
        a, b = peers["a.test"], peers["b.test"]
        app = build_http_app(
            [
                Endpoint("GET", (PATH.format("{param}"),), echo, auth=AuthMode.SERVER),
                Endpoint("PUT", (PATH.format("{param}"),), echo, auth=AuthMode.SERVER),
            ],
            authenticator=None,
            limiter=None,
            settings=HttpSettings(server_authenticator=fed(b).authenticator),
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        transport_of(a).register("b.test", url)
        try:
            yield Setup(a, b, url, PATH)
        finally:
            await runner.cleanup()


async def test_signed_requests_round_trip(setup: Setup) -> None:
    client = fed(setup.a).client
    path = federation_path(PATH, "we/ird name?&")
    got = await client.get_json("b.test", path, args={"q": ["1", "2 3"], "x": "é"})
    assert got["origin"] == "a.test"
    assert got["param"] == "we/ird name?&"
    assert got["query"] == [["q", "1"], ["q", "2 3"], ["x", "é"]]
    content = {"pdus": [{"type": "m.room.message", "n": 1}], "edus": []}
    got = await client.put_json("b.test", federation_path(PATH, "t1"), content)
    assert got["body"] == content


def raw_header(
    key: SigningKey,
    origin: str,
    destination: str,
    method: str,
    uri: str,
    content: Any = None,
) -> str:
    return sign_request(key, origin, destination, method, uri, content)


async def test_rejections(setup: Setup) -> None:
    a_key = setup.a.homeserver.server_keys.signing_key
    uri = "/_matrix/federation/v1/echo/x?y=1"
    good = raw_header(a_key, "a.test", "b.test", "GET", uri)
    sig = good.rsplit('sig="', 1)[1].rstrip('"')
    tampered = good.replace(sig, ("A" if sig[0] != "A" else "B") + sig[1:])
    other_dest = raw_header(a_key, "a.test", "c.test", "GET", uri)
    unknown_key = raw_header(
        SigningKey(bytes(32), "nope"), "a.test", "b.test", "GET", uri
    )
    unknown_origin = raw_header(a_key, "nowhere.test", "b.test", "GET", uri)
    other_uri = raw_header(a_key, "a.test", "b.test", "GET", uri + "&z=2")
    cases: list[tuple[str, dict[str, str], int]] = [
        ("good", {"Authorization": good}, 200),
        ("no header", {}, 401),
        ("bearer", {"Authorization": "Bearer abc"}, 401),
        ("malformed", {"Authorization": "X-Matrix origin="}, 401),
        ("tampered", {"Authorization": tampered}, 401),
        ("wrong destination", {"Authorization": other_dest}, 401),
        ("unknown key", {"Authorization": unknown_key}, 401),
        ("unreachable origin", {"Authorization": unknown_origin}, 401),
        ("bad origin name", {"Authorization": good.replace("a.test", "a test!")}, 400),
        (
            "non-numeric port",
            {"Authorization": good.replace("a.test", "a.test:http")},
            400,
        ),
        ("signed for another uri", {"Authorization": other_uri}, 401),
    ]
    async with aiohttp.ClientSession() as http:
        for name, headers, status in cases:
            async with http.get(setup.url + uri, headers=headers) as r:
                assert r.status == status, name
                if status in (400, 401):
                    assert (await r.json())["errcode"] == "M_UNAUTHORIZED", name
        # Content is covered by the signature.
        put_uri = "/_matrix/federation/v1/echo/x"
        signed = raw_header(a_key, "a.test", "b.test", "PUT", put_uri, {"n": 1})
        for body, status in (
            (b'{"n":1}', 200),
            (b'{"n":2}', 401),
            (b"", 401),
            (b"{oops", 400),
        ):
            async with http.put(
                setup.url + put_uri, data=body, headers={"Authorization": signed}
            ) as r:
                assert r.status == status, body


async def test_authenticated_request_clears_backoff(setup: Setup) -> None:
    b_retry = fed(setup.b).retry
    await b_retry.record_failure("a.test")
    assert b_retry.is_backing_off("a.test")
    await fed(setup.a).client.get_json("b.test", federation_path(PATH, "x"))
    assert not b_retry.is_backing_off("a.test")
    assert await fed(setup.b).store.get_destination_retry_states() == []


async def test_client_errors_and_backoff(setup: Setup) -> None:
    client = fed(setup.a).client
    with pytest.raises(FederationError) as e:
        await client.get_json("b.test", "/_matrix/federation/v1/nothing")
    assert (e.value.status, e.value.errcode) == (404, "M_UNRECOGNIZED")
    # No route: a network error puts the destination into backoff.
    with pytest.raises(FederationError) as e:
        await client.get_json("gone.test", "/x")
    assert e.value.is_network_error
    with pytest.raises(FederationError, match="not retrying"):
        await client.get_json("gone.test", "/x")
    with pytest.raises(FederationError):
        await client.get_json("a.test", "/x")  # never to ourselves


async def test_version_endpoint(tmp_path: Path) -> None:
    async with (
        in_process_network(tmp_path, ["a.test"]) as peers,
        aiohttp.ClientSession() as http,
        http.get(peers["a.test"].base_url + "/_matrix/federation/v1/version") as r,
    ):
        assert r.status == 200
        body = await r.json()
    assert body["server"]["name"] == "Ranvier"
    assert isinstance(body["server"]["version"], str)


def test_canonical_body_is_what_we_send() -> None:
    # The client sends exactly the canonical bytes it signed over.
    assert (
        encode_canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    )
