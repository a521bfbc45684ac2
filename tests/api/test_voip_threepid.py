"""GET /voip/turnServer, the third-party identifier answers and /thirdparty/*."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

from ranvier.util.clock import FakeClock
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import make_guest, make_user

URIS = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
GUESTS: dict[str, Any] = {"registration": {"allow_guests": True}}


async def test_turn_server_without_turn_is_empty(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        assert await alice.call("GET", "/voip/turnServer") == (200, {})
        status, body = await api.call("GET", "/voip/turnServer")
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_turn_server_shared_secret(tmp_path: Path) -> None:
    clock = FakeClock(start_msec=1_700_000_000_500)
    turn = {"uris": URIS, "shared_secret": "s3cret", "user_lifetime": "1h"}
    overrides = {"turn": turn, **GUESTS}
    async with accounts_server(tmp_path, overrides=overrides, clock=clock) as (_, api):
        alice = await make_user(api, "alice")
        status, body = await alice.call("GET", "/voip/turnServer")
        assert status == 200, body
        expected_user = f"{1_700_000_000 + 3600}:{alice.user_id}"
        mac = hmac.new(b"s3cret", expected_user.encode(), hashlib.sha1).digest()
        assert body == {
            "username": expected_user,
            "password": base64.b64encode(mac).decode(),
            "uris": URIS,
            "ttl": 3600,
        }
        # Guests are allowed by default.
        guest = await make_guest(api)
        status, body = await guest.call("GET", "/voip/turnServer")
        assert status == 200
        assert body["username"].endswith(":" + guest.user_id)


async def test_turn_server_static_credentials_and_guests(tmp_path: Path) -> None:
    turn = {
        "uris": URIS[:1],
        "username": "ranvier",
        "password": "pw",
        "allow_guests": False,
    }
    async with accounts_server(tmp_path, overrides={"turn": turn, **GUESTS}) as (
        _hs,
        api,
    ):
        alice = await make_user(api, "alice")
        status, body = await alice.call("GET", "/voip/turnServer")
        assert (status, body) == (
            200,
            {"username": "ranvier", "password": "pw", "uris": URIS[:1], "ttl": 3600},
        )
        guest = await make_guest(api)
        status, body = await guest.call("GET", "/voip/turnServer")
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_turn_uris_without_credentials_is_empty(tmp_path: Path) -> None:
    async with accounts_server(tmp_path, overrides={"turn": {"uris": URIS}}) as (
        _hs,
        api,
    ):
        alice = await make_user(api, "alice")
        assert await alice.call("GET", "/voip/turnServer") == (200, {})


async def test_threepid_endpoints_refuse(tmp_path: Path) -> None:
    token_body = {"client_secret": "abc", "email": "a@example.com", "send_attempt": 1}
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        for path in ("/account/3pid/add", "/account/3pid/bind", "/account/3pid"):
            status, body = await alice.call("POST", path, token_body)
            assert (status, body["errcode"]) == (403, "M_THREEPID_DENIED"), path
        # Every requestToken endpoint answers without an access token (the spec gives
        # them no security), with or without one.
        for path in (
            "/account/3pid/email/requestToken",
            "/account/3pid/msisdn/requestToken",
        ):
            for status, body in (
                await api.call("POST", path, json=token_body),
                await alice.call("POST", path, token_body),
            ):
                assert (status, body["errcode"]) == (
                    400,
                    "M_THREEPID_MEDIUM_NOT_SUPPORTED",
                ), path
        for path in ("/register/email/requestToken", "/register/msisdn/requestToken"):
            status, body = await api.call("POST", path, json=token_body)
            assert (status, body["errcode"]) == (403, "M_THREEPID_DENIED"), path
        for path in (
            "/account/password/email/requestToken",
            "/account/password/msisdn/requestToken",
        ):
            status, body = await api.call("POST", path, json=token_body)
            assert (status, body["errcode"]) == (400, "M_THREEPID_NOT_FOUND"), path
        # Adding needs an account.
        status, body = await api.call("POST", "/account/3pid/add", json={})
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        status, body = await api.call(
            "POST", "/account/3pid/email/requestToken", data=b"not json"
        )
        assert (status, body["errcode"]) == (400, "M_NOT_JSON")

        threepid = {"medium": "email", "address": "a@example.com"}
        for path in ("/account/3pid/delete", "/account/3pid/unbind"):
            assert await alice.call("POST", path, threepid) == (
                200,
                {"id_server_unbind_result": "no-support"},
            )
            status, body = await alice.call("POST", path, {"medium": "email"})
            assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        assert await alice.call("GET", "/account/3pid") == (200, {"threepids": []})


async def test_thirdparty_networks(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        assert await alice.call("GET", "/thirdparty/protocols") == (200, {})
        for path in (
            "/thirdparty/protocol/irc",
            "/thirdparty/location/irc",
            "/thirdparty/user/irc",
        ):
            status, body = await alice.call("GET", path)
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
        assert await alice.call("GET", "/thirdparty/location?alias=%23a:b") == (200, [])
        assert await alice.call("GET", "/thirdparty/user?userid=@a:b") == (200, [])
        status, body = await api.call("GET", "/thirdparty/protocols")
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
