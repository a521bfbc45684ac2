"""The main account flows through the real server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ranvier.app.cli import main as cli_main
from ranvier.storage.txn import EngineName
from ranvier.util.clock import FakeClock
from tests.helpers.accounts import PASSWORD, V1, accounts_server


async def test_register_login_devices_password_deactivate(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        # Registration: the first round answers with the UIA flows and a session.
        status, first = await api.call(
            "POST", "/register", json={"username": "Alice", "password": PASSWORD}
        )
        assert status == 401
        assert first["flows"] == [{"stages": ["m.login.dummy"]}]
        assert first["completed"] == []
        assert "errcode" not in first
        status, reg = await api.call(
            "POST",
            "/register",
            json={
                "username": "Alice",
                "password": PASSWORD,
                "initial_device_display_name": "Phone",
                "auth": {"type": "m.login.dummy", "session": first["session"]},
            },
        )
        assert status == 200, reg
        alice = api.user_id("alice")  # usernames are lowercased
        assert reg["user_id"] == alice
        assert reg["access_token"].startswith("rva_")
        t1, d1 = reg["access_token"], reg["device_id"]

        status, who = await api.call("GET", "/account/whoami", token=t1)
        assert (status, who) == (
            200,
            {"user_id": alice, "device_id": d1, "is_guest": False},
        )

        # Two more devices: m.id.user with a localpart, legacy `user` with a full MXID.
        second = await api.login("alice", device_id="SECOND")
        assert second["device_id"] == "SECOND"
        status, third = await api.call(
            "POST",
            "/login",
            json={"type": "m.login.password", "user": alice, "password": PASSWORD},
        )
        assert status == 200
        t2, t3 = second["access_token"], third["access_token"]

        status, devices = await api.call("GET", "/devices", token=t1)
        assert status == 200
        by_id = {d["device_id"]: d for d in devices["devices"]}
        assert set(by_id) == {d1, "SECOND", third["device_id"]}
        assert by_id[d1]["display_name"] == "Phone"
        assert by_id[d1]["last_seen_ip"] == "127.0.0.1"
        assert isinstance(by_id[d1]["last_seen_ts"], int)

        status, _ = await api.call(
            "PUT", "/devices/SECOND", token=t2, json={"display_name": "Laptop"}
        )
        assert status == 200
        status, dev = await api.call("GET", "/devices/SECOND", token=t1)
        assert dev["display_name"] == "Laptop"

        # Logging out deletes the device and kills its token.
        assert (await api.call("POST", "/logout", token=t2))[0] == 200
        status, err = await api.call("GET", "/account/whoami", token=t2)
        assert (status, err["errcode"], err["soft_logout"]) == (
            401,
            "M_UNKNOWN_TOKEN",
            False,
        )
        status, devices = await api.call("GET", "/devices", token=t1)
        assert "SECOND" not in {d["device_id"] for d in devices["devices"]}

        # Password change (UIA) logs out every other device by default.
        status, _ = await api.with_password_uia(
            "POST", "/account/password", t1, {"new_password": "new secret"}, "alice"
        )
        assert status == 200
        assert (await api.call("GET", "/account/whoami", token=t3))[0] == 401
        assert (await api.call("GET", "/account/whoami", token=t1))[0] == 200
        status, err = await api.call(
            "POST",
            "/login",
            json={"type": "m.login.password", "user": "alice", "password": PASSWORD},
        )
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
        await api.login("alice", "new secret")

        # Profile: registration set the display name to the localpart.
        status, profile = await api.call("GET", f"/profile/{alice}")
        assert (status, profile) == (200, {"displayname": "alice"})

        # Deactivation revokes everything and keeps the name taken.
        status, body = await api.with_password_uia(
            "POST", "/account/deactivate", t1, {}, "alice", "new secret"
        )
        assert (status, body) == (200, {"id_server_unbind_result": "no-support"})
        assert (await api.call("GET", "/account/whoami", token=t1))[0] == 401
        status, err = await api.call(
            "POST",
            "/login",
            json={
                "type": "m.login.password",
                "user": "alice",
                "password": "new secret",
            },
        )
        assert status == 403
        status, err = await api.call("GET", "/register/available?username=alice")
        assert (status, err["errcode"]) == (400, "M_USER_IN_USE")


async def test_refresh_tokens_rotate_and_expire(
    tmp_path: Path, db_engine: EngineName
) -> None:
    clock = FakeClock()
    async with accounts_server(tmp_path, engine=db_engine, clock=clock) as (_hs, api):
        await api.register("bob")
        login = await api.login("bob", refresh_token=True)
        assert login["expires_in_ms"] > 0
        a1, r1 = login["access_token"], login["refresh_token"]
        assert (await api.call("GET", "/account/whoami", token=a1))[0] == 200

        status, new = await api.call("POST", "/refresh", json={"refresh_token": r1})
        assert status == 200
        a2, r2 = new["access_token"], new["refresh_token"]
        assert new["expires_in_ms"] == login["expires_in_ms"]
        # The old access token is revoked at once.
        assert (await api.call("GET", "/account/whoami", token=a1))[0] == 401
        # Once the new access token is used, the old refresh token is revoked too.
        assert (await api.call("GET", "/account/whoami", token=a2))[0] == 200
        status, err = await api.call("POST", "/refresh", json={"refresh_token": r1})
        assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")

        # An expired access token is a soft logout; the refresh token still works.
        clock.advance(login["expires_in_ms"] / 1000 + 1)
        status, err = await api.call("GET", "/account/whoami", token=a2)
        assert (status, err["errcode"], err["soft_logout"]) == (
            401,
            "M_UNKNOWN_TOKEN",
            True,
        )
        status, new = await api.call("POST", "/refresh", json={"refresh_token": r2})
        assert status == 200
        status, who = await api.call(
            "GET", "/account/whoami", token=new["access_token"]
        )
        assert (status, who["user_id"]) == (200, api.user_id("bob"))


async def test_refresh_retry_before_use(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        reg = await api.register("carol", refresh_token=True)
        r1 = reg["refresh_token"]
        # A client that lost the response may refresh again with the same token...
        status, lost = await api.call("POST", "/refresh", json={"refresh_token": r1})
        assert status == 200
        status, kept = await api.call("POST", "/refresh", json={"refresh_token": r1})
        assert status == 200
        # ...which replaces the unused pair it got the first time.
        assert (await api.call("GET", "/account/whoami", token=lost["access_token"]))[
            0
        ] == 401
        status, err = await api.call(
            "POST", "/refresh", json={"refresh_token": lost["refresh_token"]}
        )
        assert status == 401
        status, _ = await api.call(
            "POST", "/refresh", json={"refresh_token": kept["refresh_token"]}
        )
        assert status == 200
        status, err = await api.call("POST", "/refresh", json={"refresh_token": r1})
        assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_token_gated_registration(tmp_path: Path, db_engine: EngineName) -> None:
    overrides = {"registration": {"enabled": True, "require_token": True}}
    async with accounts_server(tmp_path, engine=db_engine, overrides=overrides) as (
        hs,
        api,
    ):
        config = [
            str(hs.data_dir / "homeserver.yaml"),
            str(hs.data_dir / "test-overrides.yaml"),
        ]
        # The operator command, against the running server's database.
        args = ["registration-token", "create", "-c", config[0], "-c", config[1]]
        rc = await asyncio.to_thread(
            cli_main, [*args, "--uses", "1", "--token", "invite-1"]
        )
        assert rc == 0

        validity = "/register/m.login.registration_token/validity"
        status, body = await api.call("GET", validity + "?token=invite-1", prefix=V1)
        assert (status, body) == (200, {"valid": True})
        status, body = await api.call("GET", validity + "?token=nope", prefix=V1)
        assert (status, body) == (200, {"valid": False})

        reg = {"username": "dave", "password": PASSWORD}
        status, first = await api.call("POST", "/register", json=reg)
        assert status == 401
        assert first["flows"] == [
            {"stages": ["m.login.registration_token", "m.login.dummy"]}
        ]
        session = first["session"]
        # The dummy stage alone does not complete the flow.
        status, body = await api.call(
            "POST",
            "/register",
            json={**reg, "auth": {"type": "m.login.dummy", "session": session}},
        )
        assert (status, body["completed"]) == (401, ["m.login.dummy"])
        bad = {
            "type": "m.login.registration_token",
            "token": "wrong",
            "session": session,
        }
        status, body = await api.call("POST", "/register", json={**reg, "auth": bad})
        assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
        good = {**bad, "token": "invite-1"}
        # The last round may omit the password: the session remembers it.
        status, body = await api.call(
            "POST", "/register", json={"username": "dave", "auth": good}
        )
        assert status == 200, body
        await api.login("dave")

        # The single use is spent.
        status, body = await api.call("GET", validity + "?token=invite-1", prefix=V1)
        assert body == {"valid": False}
        status, first = await api.call(
            "POST", "/register", json={**reg, "username": "erin"}
        )
        auth = {**good, "session": first["session"]}
        status, body = await api.call(
            "POST", "/register", json={**reg, "username": "erin", "auth": auth}
        )
        assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
