"""Synapse admin API, users and shared-secret registration, on both engines: admin-only
access, shapes, pagination and errors; the spec's whois and lock/suspend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ranvier.api.admin.register import registration_mac
from tests.federation.interop.synapse_server import (
    SynapseUnavailable,
    ensure_synapse_installed,
)
from tests.helpers.accounts import Api, accounts_server
from tests.helpers.ci import missing_component
from tests.helpers.rooms import User, make_user, q

SECRET = "s3cret"
OVERRIDES: dict[str, Any] = {"registration": {"shared_secret": SECRET}}


async def _register_shared(
    api: Api, username: str, *, admin: bool = False, secret: str = SECRET
) -> tuple[int, dict[str, Any], str]:
    status, body = await api.call("GET", "/_synapse/admin/v1/register", prefix="")
    assert status == 200, body
    nonce = body["nonce"]
    # As register_new_matrix_user computes it.
    mac = registration_mac(secret, nonce, username, "pw-" + username, admin)
    status, body = await api.call(
        "POST",
        "/_synapse/admin/v1/register",
        prefix="",
        json={
            "nonce": nonce,
            "username": username,
            "password": "pw-" + username,
            "admin": admin,
            "mac": mac,
        },
    )
    return status, body, nonce


async def admin_user(api: Api) -> User:
    status, body, _ = await _register_shared(api, "root", admin=True)
    assert status == 200, body
    return User(api, body["user_id"], body["access_token"], body["device_id"])


async def test_shared_secret_registration(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        status, body, nonce = await _register_shared(api, "Alice", admin=True)
        assert status == 200, body
        assert body["user_id"] == "@alice:localhost"
        assert body["home_server"] == "localhost"
        assert {"access_token", "device_id"} <= body.keys()
        # The token works, and the account is an admin.
        status, who = await api.call(
            "GET", "/account/whoami", token=body["access_token"]
        )
        assert (status, who["user_id"]) == (200, "@alice:localhost")
        status, out = await api.call(
            "GET",
            "/_synapse/admin/v1/users/@alice:localhost/admin",
            prefix="",
            token=body["access_token"],
        )
        assert (status, out) == (200, {"admin": True})
        # A reused nonce is refused.
        reuse = {
            "nonce": nonce,
            "username": "bob",
            "password": "pw",
            "mac": registration_mac(SECRET, nonce, "bob", "pw", False),
        }
        status, out = await api.call(
            "POST", "/_synapse/admin/v1/register", prefix="", json=reuse
        )
        assert (status, out["errcode"], out["error"]) == (
            400,
            "M_UNKNOWN",
            "unrecognised nonce",
        )
        # A wrong HMAC is refused, and spends its nonce.
        status, out, nonce = await _register_shared(api, "bob", secret="wrong")
        assert (status, out["errcode"], out["error"]) == (
            403,
            "M_FORBIDDEN",
            "HMAC incorrect",
        )
        assert (
            await api.call("GET", "/_synapse/admin/v2/users/@bob:localhost", prefix="")
        )[0] == 401
        # Taken user IDs.
        status, out, _ = await _register_shared(api, "alice")
        assert (status, out["errcode"]) == (400, "M_USER_IN_USE")
        status, out = await api.call(
            "POST", "/_synapse/admin/v1/register", prefix="", json={"nonce": "x"}
        )
        assert status == 400
        status, out = await api.call(
            "GET", "/_synapse/admin/v1/server_version", prefix=""
        )
        assert status == 200
        assert isinstance(out["server_version"], str)


async def test_shared_secret_disabled(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        status, out = await api.call("GET", "/_synapse/admin/v1/register", prefix="")
        assert (status, out["error"]) == (
            400,
            "Shared secret registration is not enabled",
        )


async def test_non_admin_refused(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        bob = await make_user(api, "bob")
        uid = q(bob.user_id)
        for method, path in (
            ("GET", "/_synapse/admin/v2/users"),
            ("GET", "/_synapse/admin/v3/users"),
            ("GET", f"/_synapse/admin/v2/users/{uid}"),
            ("PUT", f"/_synapse/admin/v2/users/{uid}"),
            ("POST", f"/_synapse/admin/v1/deactivate/{uid}"),
            ("POST", f"/_synapse/admin/v1/reset_password/{uid}"),
            ("GET", f"/_synapse/admin/v1/users/{uid}/admin"),
            ("PUT", f"/_synapse/admin/v1/users/{uid}/admin"),
            ("GET", f"/_synapse/admin/v1/whois/{q('@root:localhost')}"),
            ("GET", f"/_synapse/admin/v2/users/{uid}/devices"),
            ("GET", f"/_synapse/admin/v1/users/{uid}/joined_rooms"),
            ("POST", f"/_synapse/admin/v1/users/{uid}/shadow_ban"),
            ("POST", f"/_synapse/admin/v1/users/{uid}/login"),
            ("GET", f"/_matrix/client/v1/admin/lock/{uid}"),
            ("PUT", f"/_matrix/client/v1/admin/suspend/{uid}"),
        ):
            status, out = await bob.call(method, path, {}, prefix="")
            assert (status, out["errcode"], out["error"]) == (
                403,
                "M_FORBIDDEN",
                "You are not a server admin",
            ), (method, path)
            status, out = await api.call(method, path, json={}, prefix="")
            assert (status, out["errcode"]) == (401, "M_MISSING_TOKEN"), path
        # Users may whois themselves (spec).
        status, out = await bob.call("GET", f"/admin/whois/{uid}")
        assert status == 200
        assert out["user_id"] == bob.user_id


async def test_list_and_query_users(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        for name in ("carol", "dave", "erin"):
            await make_user(api, name)
        base = "/_synapse/admin/v2/users"
        status, out = await root.call("GET", f"{base}?limit=2", prefix="")
        assert status == 200, out
        assert out["total"] == 4
        assert out["next_token"] == "2"
        assert [u["name"] for u in out["users"]] == [
            "@carol:localhost",
            "@dave:localhost",
        ]
        status, out = await root.call("GET", f"{base}?from=2&limit=2", prefix="")
        assert [u["name"] for u in out["users"]] == [
            "@erin:localhost",
            "@root:localhost",
        ]
        assert "next_token" not in out
        status, out = await root.call("GET", f"{base}?dir=b&limit=1", prefix="")
        assert [u["name"] for u in out["users"]] == ["@root:localhost"]
        status, out = await root.call("GET", f"{base}?name=AR", prefix="")
        assert [u["name"] for u in out["users"]] == ["@carol:localhost"]
        status, out = await root.call("GET", f"{base}?admins=true", prefix="")
        assert [u["name"] for u in out["users"]] == ["@root:localhost"]
        status, out = await root.call("GET", f"{base}?order_by=creation_ts", prefix="")
        assert out["users"][0]["name"] == "@root:localhost"
        for bad in ("from=-1", "limit=-5", "order_by=nope", "dir=x", "from=abc"):
            status, out = await root.call("GET", f"{base}?{bad}", prefix="")
            assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), bad

        user = q("@carol:localhost")
        status, out = await root.call("GET", f"{base}/{user}", prefix="")
        assert status == 200
        assert out["name"] == "@carol:localhost"
        assert out["admin"] is False
        assert out["displayname"] == "carol"
        assert out["deactivated"] is False
        status, out = await root.call(
            "GET", f"{base}/{q('@nobody:localhost')}", prefix=""
        )
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        status, out = await root.call("GET", f"{base}/{q('@x:elsewhere')}", prefix="")
        assert status == 400

        # Deactivation: hidden from v2 by default, shown with deactivated=true; v3 filters.
        status, out = await root.call(
            "POST", f"/_synapse/admin/v1/deactivate/{user}", {"erase": True}, prefix=""
        )
        assert (status, out) == (200, {"id_server_unbind_result": "success"})
        status, out = await root.call("GET", f"{base}/{user}", prefix="")
        assert out["deactivated"] is True
        assert out["erased"] is True
        status, out = await root.call("GET", base, prefix="")
        assert out["total"] == 3
        status, out = await root.call("GET", f"{base}?deactivated=true", prefix="")
        assert out["total"] == 4
        status, out = await root.call(
            "GET", "/_synapse/admin/v3/users?deactivated=true", prefix=""
        )
        assert [u["name"] for u in out["users"]] == ["@carol:localhost"]


async def test_create_modify_and_sessions(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        uid = "@frank:localhost"
        path = f"/_synapse/admin/v2/users/{q(uid)}"
        status, out = await root.call(
            "PUT", path, {"password": "pw-frank-1", "displayname": "Frank"}, prefix=""
        )
        assert status == 201, out
        assert out["name"] == uid
        assert out["displayname"] == "Frank"
        login = await api.login("frank", "pw-frank-1")
        status, out = await root.call("PUT", path, {"admin": True}, prefix="")
        assert (status, out["admin"]) == (200, True)
        status, out = await root.call(
            "PUT",
            f"/_synapse/admin/v1/users/{q(uid)}/admin",
            {"admin": False},
            prefix="",
        )
        assert status == 200
        status, out = await root.call(
            "PUT",
            f"/_synapse/admin/v1/users/{q(root.user_id)}/admin",
            {"admin": False},
            prefix="",
        )
        assert status == 400

        # Devices and whois.
        devices = f"{path}/devices"
        status, out = await root.call("GET", devices, prefix="")
        assert status == 200
        assert out["total"] == 1
        device_id = login["device_id"]
        assert out["devices"][0]["device_id"] == device_id
        status, out = await root.call(
            "PUT", f"{devices}/{device_id}", {"display_name": "phone"}, prefix=""
        )
        assert status == 200
        status, out = await root.call("GET", f"{devices}/{device_id}", prefix="")
        assert out["display_name"] == "phone"
        assert out["user_id"] == uid
        status, out = await root.call("GET", f"{devices}/NOPE", prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        for whois in (
            f"/_synapse/admin/v1/whois/{q(uid)}",
            f"/_matrix/client/v3/admin/whois/{q(uid)}",
        ):
            status, out = await root.call("GET", whois, prefix="")
            assert status == 200, out
            assert device_id in out["devices"], out
            assert (
                out["devices"][device_id]["sessions"][0]["connections"][0]["ip"]
                == "127.0.0.1"
            )

        # Reset the password: old sessions are logged out.
        status, out = await root.call(
            "POST",
            f"/_synapse/admin/v1/reset_password/{q(uid)}",
            {"new_password": "pw-frank-2"},
            prefix="",
        )
        assert (status, out) == (200, {})
        status, _ = await api.call(
            "GET", "/account/whoami", token=login["access_token"]
        )
        assert status == 401
        await api.login("frank", "pw-frank-2")

        # Login as user.
        status, out = await root.call(
            "POST", f"/_synapse/admin/v1/users/{q(uid)}/login", {}, prefix=""
        )
        assert status == 200
        status, who = await api.call(
            "GET", "/account/whoami", token=out["access_token"]
        )
        assert who["user_id"] == uid
        status, out = await root.call(
            "POST", f"/_synapse/admin/v1/users/{q(root.user_id)}/login", {}, prefix=""
        )
        assert status == 400
        # With an expiry in the past the token is dead at once (soft logout).
        status, out = await root.call(
            "POST",
            f"/_synapse/admin/v1/users/{q(uid)}/login",
            {"valid_until_ms": 1},
            prefix="",
        )
        assert status == 200
        status, who = await api.call(
            "GET", "/account/whoami", token=out["access_token"]
        )
        assert (status, who["errcode"]) == (401, "M_UNKNOWN_TOKEN")

        # Joined rooms, shadow ban, device deletion.
        room = await root.create_room()
        status, out = await root.call(
            "GET", f"/_synapse/admin/v1/users/{q(root.user_id)}/joined_rooms", prefix=""
        )
        assert out == {"joined_rooms": [room], "total": 1}
        status, _ = await root.call(
            "POST", f"/_synapse/admin/v1/users/{q(uid)}/shadow_ban", {}, prefix=""
        )
        status, out = await root.call("GET", path, prefix="")
        assert out["shadow_banned"] is True
        status, _ = await root.call(
            "DELETE", f"/_synapse/admin/v1/users/{q(uid)}/shadow_ban", prefix=""
        )
        status, out = await root.call("GET", path, prefix="")
        assert out["shadow_banned"] is False
        status, out = await root.call("GET", devices, prefix="")
        ids = [d["device_id"] for d in out["devices"]]
        status, _ = await root.call(
            "POST", f"{path}/delete_devices", {"devices": ids}, prefix=""
        )
        assert status == 200
        status, out = await root.call("GET", devices, prefix="")
        assert out["total"] == 0

        # Deactivate through PUT, then reactivate with a password.
        status, out = await root.call("PUT", path, {"deactivated": True}, prefix="")
        assert out["deactivated"] is True
        status, out = await root.call("PUT", path, {"deactivated": False}, prefix="")
        assert status == 400
        status, out = await root.call(
            "PUT", path, {"deactivated": False, "password": "pw-frank-3"}, prefix=""
        )
        assert (status, out["deactivated"]) == (200, False)
        await api.login("frank", "pw-frank-3")


REGISTER_NEW_MATRIX_USER = (
    Path(__file__).resolve().parents[2]
    / "bench"
    / ".venv-synapse"
    / "bin"
    / "register_new_matrix_user"
)


async def test_synapse_register_new_matrix_user(tmp_path: Path) -> None:
    """Synapse's own script, from the Synapse venv the interop suite uses (installed
    from PyPI here if it is not there yet)."""
    try:
        await asyncio.to_thread(ensure_synapse_installed)
    except SynapseUnavailable as e:
        missing_component(f"Synapse unavailable: {e}")
    async with accounts_server(tmp_path, overrides=OVERRIDES) as (hs, api):
        proc = await asyncio.create_subprocess_exec(
            str(REGISTER_NEW_MATRIX_USER),
            "-u",
            "operator",
            "-p",
            "pw-operator",
            "-a",
            "-k",
            SECRET,
            hs.base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        login = await api.login("operator", "pw-operator")
        status, body = await api.call(
            "GET",
            "/_synapse/admin/v1/users/@operator:localhost/admin",
            prefix="",
            token=login["access_token"],
        )
        assert (status, body) == (200, {"admin": True})
        # A wrong secret fails with the script's error.
        proc = await asyncio.create_subprocess_exec(
            str(REGISTER_NEW_MATRIX_USER),
            "-u", "other", "-p", "pw-other", "--no-admin", "-k", "wrong", hs.base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode != 0
        assert b"HMAC incorrect" in out


async def test_pushers_and_account_data(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        pusher = {
            "kind": "http",
            "app_id": "com.example.app",
            "pushkey": "KEY",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "lang": "en",
            "data": {"url": "https://push.example/_matrix/push/v1/notify"},
        }
        status, out = await bob.call("POST", "/pushers/set", pusher)
        assert status == 200, out
        room = await bob.create_room()
        uid = q(bob.user_id)
        await bob.call("PUT", f"/user/{uid}/account_data/org.example.g", {"a": 1})
        await bob.call(
            "PUT", f"/user/{uid}/rooms/{q(room)}/account_data/org.example.r", {"b": 2}
        )
        base = f"/_synapse/admin/v1/users/{uid}"
        status, out = await bob.call("GET", f"{base}/pushers", prefix="")
        assert status == 403
        status, out = await root.call("GET", f"{base}/pushers", prefix="")
        assert status == 200, out
        assert out["total"] == 1
        assert out["pushers"][0]["pushkey"] == "KEY"
        assert out["pushers"][0]["app_id"] == "com.example.app"
        status, out = await root.call("GET", f"{base}/accountdata", prefix="")
        assert status == 200, out
        assert out["account_data"]["global"]["org.example.g"] == {"a": 1}
        assert out["account_data"]["rooms"][room]["org.example.r"] == {"b": 2}


async def test_shadow_ban_hides_sends(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        carol = await make_user(api, "carol")
        room = await root.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        await bob.send(room, "before")
        ban = f"/_synapse/admin/v1/users/{q(bob.user_id)}/shadow_ban"
        assert await root.call("POST", ban, {}, prefix="") == (200, {})
        # Bob is told it worked; nobody sees it; his invites go nowhere either.
        event_id = await bob.send(room, "hidden")
        assert event_id.startswith("$")
        status, out = await bob.invite(room, carol.user_id)
        assert (status, out) == (200, {})
        assert await root.timeline_bodies(room) == ["before"]
        status, out = await carol.call("GET", "/sync?timeout=0")
        assert room not in out.get("rooms", {}).get("invite", {})
        assert await root.call("DELETE", ban, prefix="") == (200, {})
        await bob.send(room, "after")
        assert await root.timeline_bodies(room) == ["before", "after"]
