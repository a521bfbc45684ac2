"""Devices (with UIA deletes), profiles, capabilities and 3PIDs through the real server."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.accounts import Api, accounts_server


async def _two_devices(api: Api, localpart: str) -> tuple[str, str, str]:
    reg = await api.register(localpart, device_id="ONE")
    second = await api.login(localpart, device_id="TWO")
    return reg["access_token"], second["access_token"], api.user_id(localpart)


async def test_device_errors_and_uia_deletes(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        t1, t2, _alice = await _two_devices(api, "alice")
        status, body = await api.call("GET", "/devices/NOPE", token=t1)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await api.call("PUT", "/devices/NOPE", token=t1, json={})
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await api.call(
            "PUT", "/devices/ONE", token=t1, json={"display_name": "x" * 101}
        )
        assert (status, body["errcode"]) == (400, "M_TOO_LARGE")
        status, body = await api.call(
            "PUT", "/devices/ONE", token=t1, json={"display_name": 3}
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        # Without display_name the name stays; null clears it.
        named = {"display_name": "A"}
        assert (await api.call("PUT", "/devices/ONE", token=t1, json=named))[0] == 200
        assert (await api.call("PUT", "/devices/ONE", token=t1, json={}))[0] == 200
        status, device = await api.call("GET", "/devices/ONE", token=t1)
        assert (device["device_id"], device["display_name"]) == ("ONE", "A")
        assert device["last_seen_ip"] == "127.0.0.1"
        cleared = {"display_name": None}
        assert (await api.call("PUT", "/devices/ONE", token=t1, json=cleared))[0] == 200
        status, device = await api.call("GET", "/devices/ONE", token=t1)
        assert "display_name" not in device

        # DELETE asks for the password first; a wrong one fails the stage.
        status, first = await api.call("DELETE", "/devices/TWO", token=t1)
        assert status == 401
        assert first["flows"] == [{"stages": ["m.login.password"]}]
        auth = {**api.password_auth("alice", "wrong"), "session": first["session"]}
        status, body = await api.call(
            "DELETE", "/devices/TWO", token=t1, json={"auth": auth}
        )
        assert (status, body["errcode"], body["session"]) == (
            401,
            "M_FORBIDDEN",
            first["session"],
        )
        status, _ = await api.with_password_uia(
            "DELETE", "/devices/TWO", t1, {}, "alice"
        )
        assert status == 200
        assert (await api.call("GET", "/account/whoami", token=t2))[0] == 401
        # Deleting an already-deleted device is fine.
        status, _ = await api.with_password_uia(
            "DELETE", "/devices/TWO", t1, {}, "alice"
        )
        assert status == 200

        # Another user's UIA session cannot be borrowed.
        bob = (await api.register("bob"))["access_token"]
        status, first = await api.call(
            "POST", "/delete_devices", token=t1, json={"devices": []}
        )
        auth = {**api.password_auth("bob"), "session": first["session"]}
        status, body = await api.call(
            "POST", "/delete_devices", token=bob, json={"devices": [], "auth": auth}
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

        status, body = await api.call("POST", "/delete_devices", token=t1, json={})
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await api.call(
            "POST", "/delete_devices", token=t1, json={"devices": [1]}
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        t3 = (await api.login("alice", device_id="THREE"))["access_token"]
        status, _ = await api.with_password_uia(
            "POST", "/delete_devices", t1, {"devices": ["THREE", "GONE"]}, "alice"
        )
        assert status == 200
        assert (await api.call("GET", "/account/whoami", token=t3))[0] == 401
        status, devices = await api.call("GET", "/devices", token=t1)
        assert [d["device_id"] for d in devices["devices"]] == ["ONE"]


async def test_password_change_keeping_devices(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        t1, t2, _ = await _two_devices(api, "carol")
        status, body = await api.with_password_uia(
            "POST", "/account/password", t1, {"logout_devices": False}, "carol"
        )
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await api.call(
            "POST", "/account/password", token=t1, json={"new_password": ""}
        )
        assert (status, body["errcode"]) == (400, "M_WEAK_PASSWORD")
        status, _ = await api.with_password_uia(
            "POST",
            "/account/password",
            t1,
            {"new_password": "another one", "logout_devices": False},
            "carol",
        )
        assert status == 200
        assert (await api.call("GET", "/account/whoami", token=t2))[0] == 200
        await api.login("carol", "another one")


async def test_profiles(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        token = (await api.register("pat"))["access_token"]
        other = (await api.register("quinn"))["access_token"]
        pat = api.user_id("pat")
        base = f"/profile/{pat}"

        async def put(key: str, body: object, tok: str = token) -> tuple[int, str]:
            status, resp = await api.call("PUT", f"{base}/{key}", token=tok, json=body)
            return status, resp.get("errcode", "")

        assert await put("displayname", {"displayname": "Pat P."}) == (200, "")
        assert await put("avatar_url", {"avatar_url": "mxc://localhost/abcDEF123"}) == (
            200,
            "",
        )
        assert await put("m.tz", {"m.tz": "Europe/Paris"}) == (200, "")
        assert await put("org.example.job", {"org.example.job": {"title": "Dev"}}) == (
            200,
            "",
        )
        status, profile = await api.call("GET", base)
        assert (status, profile) == (
            200,
            {
                "displayname": "Pat P.",
                "avatar_url": "mxc://localhost/abcDEF123",
                "m.tz": "Europe/Paris",
                "org.example.job": {"title": "Dev"},
            },
        )
        status, field = await api.call("GET", f"{base}/displayname")
        assert (status, field) == (200, {"displayname": "Pat P."})
        # The pre-v1.16 URLs are the same routes.
        status, field = await api.call(
            "GET", f"{base}/avatar_url", prefix="/_matrix/client/r0"
        )
        assert (status, field) == (200, {"avatar_url": "mxc://localhost/abcDEF123"})

        errors = [
            ("displayname", {"displayname": 5}, token, 400, "M_BAD_JSON"),
            ("displayname", {"displayname": "x" * 257}, token, 400, "M_TOO_LARGE"),
            ("displayname", {}, token, 400, "M_MISSING_PARAM"),
            ("avatar_url", {"avatar_url": "https://example.com/a.png"}, token, 400, "M_BAD_JSON"),
            ("m.tz", {"m.tz": 1}, token, 400, "M_BAD_JSON"),
            ("Bad-Key", {"Bad-Key": 1}, token, 400, "M_INVALID_PARAM"),
            ("org." + "a" * 260, {}, token, 400, "M_KEY_TOO_LARGE"),
            ("org.example.big", {"org.example.big": "x" * 70_000}, token, 400, "M_PROFILE_TOO_LARGE"),
            ("displayname", {"displayname": "Mallory"}, other, 403, "M_FORBIDDEN"),
        ]  # fmt: skip
        for key, body, tok, status, errcode in errors:
            assert await put(key, body, tok) == (status, errcode), key
        status, raw = await api.call(
            "PUT", f"{base}/displayname", token=token, data=b"{"
        )
        assert (status, raw["errcode"]) == (400, "M_NOT_JSON")

        # Clearing: empty string or null for the member fields, DELETE for any.
        assert await put("avatar_url", {"avatar_url": ""}) == (200, "")
        assert await put("displayname", {"displayname": None}) == (200, "")
        status, body = await api.call("DELETE", f"{base}/org.example.job", token=token)
        assert status == 200
        status, body = await api.call("DELETE", f"{base}/m.tz", token=other)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, profile = await api.call("GET", base)
        assert profile == {"m.tz": "Europe/Paris"}
        status, body = await api.call("GET", f"{base}/displayname")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        status, body = await api.call("GET", f"/profile/{api.user_id('nobody')}")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        # Not a user ID at all: a bad parameter (as Synapse).
        status, body = await api.call("GET", "/profile/not-a-user-id")
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        # Another server's user is asked of that server: unreachable here, 502 (as
        # Synapse answers when the remote server cannot be reached).
        status, body = await api.call("GET", "/profile/@pat:remote.example")
        assert (status, body["errcode"]) == (502, "M_UNKNOWN")


async def test_capabilities_3pid_whoami(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        token = (await api.register("cap"))["access_token"]
        status, body = await api.call("GET", "/capabilities", token=token)
        assert status == 200
        caps = body["capabilities"]
        assert caps["m.change_password"] == {"enabled": True}
        assert caps["m.room_versions"]["default"] == "12"
        assert caps["m.room_versions"]["available"] == {
            str(v): "stable" for v in range(1, 13)
        }
        assert caps["m.get_login_token"] == {"enabled": True}
        assert caps["m.3pid_changes"] == {"enabled": False}
        assert (await api.call("GET", "/capabilities"))[0] == 401
        status, body = await api.call("GET", "/account/3pid", token=token)
        assert (status, body) == (200, {"threepids": []})
