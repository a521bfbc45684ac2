"""Error paths of registration, login and tokens (SQLite; the flows run on both engines
in test_accounts_flow.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.helpers.accounts import PASSWORD, V1, Api, accounts_server


async def _error(api: Api, method: str, path: str, **kw: Any) -> tuple[int, str]:
    status, body = await api.call(method, path, **kw)
    return status, body.get("errcode", "")


async def test_login_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        await api.register("alice")
        pw = {"type": "m.login.password", "password": PASSWORD}
        cases: list[tuple[dict[str, Any] | None, bytes | None, int, str]] = [
            (None, b"{not json", 400, "M_NOT_JSON"),
            (None, b"[1, 2]", 400, "M_NOT_JSON"),
            ({"identifier": {"type": "m.id.user", "user": "alice"}}, None, 400, "M_MISSING_PARAM"),
            ({**pw, "type": "m.login.bogus"}, None, 400, "M_UNKNOWN"),
            ({"type": 5}, None, 400, "M_BAD_JSON"),
            (pw, None, 400, "M_MISSING_PARAM"),
            ({**pw, "identifier": "alice"}, None, 400, "M_BAD_JSON"),
            ({**pw, "identifier": {"type": "m.id.user"}}, None, 400, "M_BAD_JSON"),
            ({**pw, "identifier": {"type": "m.id.weird"}}, None, 400, "M_UNKNOWN"),
            (
                {**pw, "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"}},
                None, 403, "M_FORBIDDEN",
            ),
            ({**pw, "user": "alice", "password": 123}, None, 400, "M_BAD_JSON"),
            ({**pw, "user": "alice", "password": "wrong"}, None, 403, "M_FORBIDDEN"),
            ({**pw, "user": "nobody"}, None, 403, "M_FORBIDDEN"),
            ({**pw, "user": "@alice:elsewhere.example"}, None, 403, "M_FORBIDDEN"),
            ({**pw, "user": "@alice"}, None, 403, "M_FORBIDDEN"),
            ({**pw, "user": "alice", "device_id": ""}, None, 400, "M_INVALID_PARAM"),
            ({"type": "m.login.token"}, None, 400, "M_MISSING_PARAM"),
            ({"type": "m.login.token", "token": "rvl_bogus"}, None, 403, "M_FORBIDDEN"),
        ]  # fmt: skip
        for body, raw, status, errcode in cases:
            got = await _error(api, "POST", "/login", json=body, data=raw)
            assert got == (status, errcode), (body, raw)
        # The case of the localpart does not matter at login.
        await api.login("ALICE")
        await api.login(api.user_id("alice"))

        status, flows = await api.call("GET", "/login")
        assert status == 200
        assert flows == {
            "flows": [
                {"type": "m.login.password"},
                {"type": "m.login.token", "get_login_token": True},
            ]
        }


async def test_token_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        status, body = await api.call("GET", "/account/whoami", token="rva_not_a_token")
        assert (status, body["errcode"], body["soft_logout"]) == (
            401,
            "M_UNKNOWN_TOKEN",
            False,
        )
        assert await _error(api, "GET", "/account/whoami") == (401, "M_MISSING_TOKEN")
        assert await _error(api, "POST", "/refresh", json={}) == (
            400,
            "M_MISSING_PARAM",
        )
        assert await _error(api, "POST", "/refresh", json={"refresh_token": 1}) == (
            400,
            "M_BAD_JSON",
        )
        assert await _error(api, "POST", "/refresh", json={"refresh_token": "x"}) == (
            401,
            "M_UNKNOWN_TOKEN",
        )
        # Query-string tokens work too (deprecated, still used).
        token = (await api.register("bob"))["access_token"]
        status, _ = await api.call("GET", f"/account/whoami?access_token={token}")
        assert status == 200

        # logout/all revokes every session.
        other = (await api.login("bob"))["access_token"]
        assert (await api.call("POST", "/logout/all", token=token))[0] == 200
        assert (await api.call("GET", "/account/whoami", token=other))[0] == 401
        assert (await api.call("GET", "/account/whoami", token=token))[0] == 401
        fresh = (await api.login("bob"))["access_token"]
        status, devices = await api.call("GET", "/devices", token=fresh)
        assert len(devices["devices"]) == 1


USERNAME_CASES = [
    ("", "M_MISSING_PARAM"),
    ("ali ce", "M_INVALID_USERNAME"),
    ("ålice", "M_INVALID_USERNAME"),
    ("al:ice", "M_INVALID_USERNAME"),
    ("12345", "M_INVALID_USERNAME"),
    ("a" * 250, "M_INVALID_USERNAME"),
    ("taken", "M_USER_IN_USE"),
    ("TAKEN", "M_USER_IN_USE"),
]


async def test_username_rules(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        await api.register("taken")
        for username, errcode in USERNAME_CASES:
            path = "/register/available?username=" + quote(username, safe="")
            status, body = await api.call("GET", path)
            assert (status, body["errcode"]) == (400, errcode), username
            if username:
                status, body = await api.call(
                    "POST",
                    "/register",
                    json={"username": username, "password": PASSWORD},
                )
                assert (status, body["errcode"]) == (400, errcode), username


async def test_register_errors_and_options(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        status, body = await api.call(
            "GET", "/register/available?username=" + quote("Free.Name_=-/+", safe="")
        )
        assert (status, body) == (200, {"available": True})
        # The longest allowed user ID is 255 bytes.
        longest = "a" * (255 - len(":localhost") - 1)
        assert (await api.call("GET", f"/register/available?username={longest}"))[
            0
        ] == 200

        assert await _error(api, "POST", "/register", data=b"nope") == (
            400,
            "M_NOT_JSON",
        )
        assert await _error(api, "POST", "/register?kind=admin", json={}) == (
            400,
            "M_INVALID_PARAM",
        )
        # Without a password the first round still gets the flows (401); the
        # password is asked for once the flow is complete.
        assert await _error(api, "POST", "/register", json={"username": "x1"}) == (
            401,
            "",
        )
        no_password = {"username": "x1", "auth": {"type": "m.login.dummy"}}
        assert await _error(api, "POST", "/register", json=no_password) == (
            400,
            "M_MISSING_PARAM",
        )
        assert await _error(api, "POST", "/register", json={"username": 5}) == (
            400,
            "M_BAD_JSON",
        )
        assert await _error(
            api, "POST", "/register", json={"username": "x1", "password": ""}
        ) == (400, "M_WEAK_PASSWORD")
        bad_auth = {"username": "x1", "password": PASSWORD, "auth": "dummy"}
        assert await _error(api, "POST", "/register", json=bad_auth) == (
            400,
            "M_BAD_JSON",
        )
        unknown_session = {
            **bad_auth,
            "auth": {"type": "m.login.dummy", "session": "zzz"},
        }
        assert await _error(api, "POST", "/register", json=unknown_session) == (
            400,
            "M_UNKNOWN",
        )
        # A stage this endpoint does not offer.
        not_offered = {
            **bad_auth,
            "auth": {"type": "m.login.password", "password": "x"},
        }
        assert await _error(api, "POST", "/register", json=not_offered) == (
            400,
            "M_UNRECOGNIZED",
        )

        # One round with a dummy stage and no session (matrix-nio's way), inhibit_login.
        status, body = await api.call(
            "POST",
            "/register",
            json={
                "username": "quiet",
                "password": PASSWORD,
                "inhibit_login": True,
                "auth": {"type": "m.login.dummy"},
            },
        )
        assert (status, body) == (
            200,
            {"user_id": api.user_id("quiet"), "home_server": "localhost"},
        )

        # Client-chosen device ID and name; no username: the server picks one.
        reg = await api.register(
            "dev", device_id="MYDEVICE", initial_device_display_name="Desk"
        )
        status, device = await api.call(
            "GET", "/devices/MYDEVICE", token=reg["access_token"]
        )
        assert (status, device["display_name"]) == (200, "Desk")
        status, first = await api.call("POST", "/register", json={"password": PASSWORD})
        status, body = await api.call(
            "POST",
            "/register",
            json={
                "password": PASSWORD,
                "auth": {"type": "m.login.dummy", "session": first["session"]},
            },
        )
        assert status == 200
        assert body["user_id"].endswith(":localhost")

        # A UIA session is bound to its endpoint.
        token = reg["access_token"]
        status, first = await api.call(
            "POST", "/delete_devices", token=token, json={"devices": []}
        )
        hijack = {
            "username": "x2",
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy", "session": first["session"]},
        }
        assert await _error(api, "POST", "/register", json=hijack) == (
            403,
            "M_FORBIDDEN",
        )


async def test_registration_disabled(tmp_path: Path) -> None:
    overrides = {"registration": {"enabled": False}}
    async with accounts_server(tmp_path, overrides=overrides) as (_hs, api):
        body = {
            "username": "x",
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy"},
        }
        assert await _error(api, "POST", "/register", json=body) == (403, "M_FORBIDDEN")
        assert await _error(api, "GET", "/register/available?username=x") == (
            403,
            "M_FORBIDDEN",
        )
        path = "/register/m.login.registration_token/validity?token=abc"
        assert await _error(api, "GET", path, prefix=V1) == (403, "M_FORBIDDEN")
        # Guests are off by default too.
        assert await _error(api, "POST", "/register?kind=guest", json={}) == (
            403,
            "M_FORBIDDEN",
        )


async def test_guests(tmp_path: Path) -> None:
    overrides = {"registration": {"allow_guests": True}}
    async with accounts_server(tmp_path, overrides=overrides) as (_hs, api):
        # Everything but the device name is ignored for guests.
        status, guest = await api.call(
            "POST",
            "/register?kind=guest",
            json={
                "username": "ignored",
                "initial_device_display_name": "Kiosk",
                "device_id": "X",
            },
        )
        assert status == 200, guest
        token, user_id = guest["access_token"], guest["user_id"]
        assert user_id != api.user_id("ignored")
        assert guest["device_id"] != "X"
        status, who = await api.call("GET", "/account/whoami", token=token)
        assert (status, who["is_guest"]) == (200, True)

        # Allowed for guests: devices, display name. Refused: the rest.
        status, devices = await api.call("GET", "/devices", token=token)
        assert devices["devices"][0]["display_name"] == "Kiosk"
        path = f"/profile/{user_id}/displayname"
        assert (await api.call("PUT", path, token=token, json={"displayname": "G"}))[
            0
        ] == 200
        path = f"/profile/{user_id}/avatar_url"
        assert await _error(api, "PUT", path, token=token, json={"avatar_url": ""}) == (
            403,
            "M_GUEST_ACCESS_FORBIDDEN",
        )
        for method, p in (
            ("GET", "/account/3pid"),
            ("POST", "/logout"),
            ("DELETE", "/devices/X"),
        ):
            assert await _error(api, method, p, token=token) == (
                403,
                "M_GUEST_ACCESS_FORBIDDEN",
            )
        # Guests have no password to log in with.
        status, _ = await api.call(
            "POST",
            "/login",
            json={"type": "m.login.password", "user": user_id, "password": ""},
        )
        assert status == 403

        # Upgrade: the same user ID, now a full account; the guest token sees the change.
        assert await _error(
            api, "POST", "/register",
            json={"username": "someoneelse", "password": PASSWORD, "guest_access_token": token,
                  "auth": {"type": "m.login.dummy"}},
        ) == (403, "M_FORBIDDEN")  # fmt: skip
        upgraded = await api.register(
            user_id[1:].split(":")[0], guest_access_token=token
        )
        assert upgraded["user_id"] == user_id
        status, who = await api.call("GET", "/account/whoami", token=token)
        assert (status, who["is_guest"]) == (200, False)
        await api.login(user_id)
        # A full account's token cannot upgrade anything.
        assert await _error(
            api, "POST", "/register",
            json={"password": PASSWORD, "guest_access_token": token, "auth": {"type": "m.login.dummy"}},
        ) == (403, "M_FORBIDDEN")  # fmt: skip


async def test_rate_limited_login(tmp_path: Path) -> None:
    overrides = {
        "rate_limits": {"enabled": True, "login": {"per_second": 0.01, "burst": 2}}
    }
    async with accounts_server(tmp_path, overrides=overrides) as (_hs, api):
        body = {"type": "m.login.password", "user": "nobody", "password": "x"}
        assert (await api.call("POST", "/login", json=body))[0] == 403
        assert (await api.call("POST", "/login", json=body))[0] == 403
        status, err = await api.call("POST", "/login", json=body)
        assert (status, err["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert err["retry_after_ms"] > 0


async def test_get_login_token(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        token = (await api.register("tina"))["access_token"]
        # Wrong password: 401 with the stage error; then the right one.
        status, first = await api.call(
            "POST", "/login/get_token", token=token, json={}, prefix=V1
        )
        assert status == 401
        auth = {**api.password_auth("tina", "wrong"), "session": first["session"]}
        status, body = await api.call(
            "POST", "/login/get_token", token=token, json={"auth": auth}, prefix=V1
        )
        assert (status, body["errcode"], body["completed"]) == (401, "M_FORBIDDEN", [])
        status, body = await api.with_password_uia(
            "POST", "/login/get_token", token, {}, "tina", prefix=V1
        )
        assert status == 200
        assert body["expires_in_ms"] == 120_000
        login = {"type": "m.login.token", "token": body["login_token"]}
        status, new = await api.call("POST", "/login", json=login)
        assert (status, new["user_id"]) == (200, api.user_id("tina"))
        # Single use.
        assert await _error(api, "POST", "/login", json=login) == (403, "M_FORBIDDEN")
        # Another user's password does not pass this user's UIA.
        await api.register("uma")
        status, body = await api.with_password_uia(
            "POST", "/login/get_token", token, {}, "uma", prefix=V1
        )
        assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
