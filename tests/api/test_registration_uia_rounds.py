"""Registration as clients actually drive it: parameters may arrive in any UIA round.

The 401 with flows comes first, whatever the request lacks; missing parameters are asked
for only once a flow is complete (spec: Client-Server API > User-Interactive
Authentication API, and `POST /register`). Each sequence below is the one a real client
sends (Element Web's is also driven through matrix-js-sdk in
tests/clients/test_js_sdk_registration.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD, accounts_server

DUMMY = {"type": "m.login.dummy"}


def dummy(session: str) -> dict[str, Any]:
    return {**DUMMY, "session": session}


async def test_element_web_probe_then_sign_up(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        # Element's probe: no username, no password, no auth.
        body: dict[str, Any] = {}
        for probe in ({}, {"initial_device_display_name": "app.element.io: Firefox"}):
            status, body = await api.call("POST", "/register", json=probe)
            assert status == 401, body
            assert body["flows"] == [{"stages": ["m.login.dummy"]}]
            assert body["params"] == {}
            assert isinstance(body["session"], str)
            assert "errcode" not in body
        # Its form submits everything with the dummy stage of the probe's session.
        status, reg = await api.call(
            "POST",
            "/register",
            json={
                "username": "eve",
                "password": PASSWORD,
                "initial_device_display_name": "app.element.io: Firefox",
                "auth": dummy(body["session"]),
            },
        )
        assert status == 200, reg
        assert reg["user_id"] == api.user_id("eve")
        status, devices = await api.call("GET", "/devices", token=reg["access_token"])
        assert status == 200
        assert [d["display_name"] for d in devices["devices"]] == [
            "app.element.io: Firefox"
        ]
        assert (await api.login("eve"))["user_id"] == api.user_id("eve")


async def test_parameters_only_in_the_first_round(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        status, first = await api.call(
            "POST",
            "/register",
            json={
                "username": "fran",
                "password": PASSWORD,
                "device_id": "FIRSTROUND",
                "initial_device_display_name": "Laptop",
            },
        )
        assert status == 401
        # The last round carries only `auth`.
        status, reg = await api.call(
            "POST", "/register", json={"auth": dummy(first["session"])}
        )
        assert status == 200, reg
        assert (reg["user_id"], reg["device_id"]) == (api.user_id("fran"), "FIRSTROUND")
        status, device = await api.call(
            "GET", "/devices/FIRSTROUND", token=reg["access_token"]
        )
        assert (status, device["display_name"]) == (200, "Laptop")


async def test_missing_password_is_asked_for_after_the_flow(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        status, first = await api.call("POST", "/register", json={"username": "gil"})
        assert status == 401, first
        status, err = await api.call(
            "POST",
            "/register",
            json={"username": "gil", "auth": dummy(first["session"])},
        )
        assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")
        assert "password" in err["error"]
        # Nothing was created, and the completed session still takes the password.
        status, avail = await api.call("GET", "/register/available?username=gil")
        assert (status, avail) == (200, {"available": True})
        status, reg = await api.call(
            "POST",
            "/register",
            json={
                "username": "gil",
                "password": PASSWORD,
                "auth": {"session": first["session"]},
            },
        )
        assert status == 200, reg
        assert reg["user_id"] == api.user_id("gil")


async def test_inhibit_login_from_an_earlier_round_returns_no_device(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        status, first = await api.call(
            "POST",
            "/register",
            json={"username": "hal", "password": PASSWORD, "inhibit_login": True},
        )
        assert status == 401
        status, reg = await api.call(
            "POST",
            "/register",
            json={"username": "hal", "auth": dummy(first["session"])},
        )
        assert status == 200, reg
        assert reg == {"user_id": api.user_id("hal"), "home_server": api.server_name}
        login = await api.login("hal")
        status, devices = await api.call("GET", "/devices", token=login["access_token"])
        assert [d["device_id"] for d in devices["devices"]] == [login["device_id"]]


async def test_one_shot_registration_and_later_rounds_overriding(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        # matrix-nio and mautrix send everything with the dummy stage at once.
        status, reg = await api.call(
            "POST",
            "/register",
            json={"username": "ida", "password": PASSWORD, "auth": DUMMY},
        )
        assert status == 200, reg
        assert "access_token" in reg
        # A later round's value wins over an earlier one's.
        status, first = await api.call(
            "POST",
            "/register",
            json={"username": "jo", "password": PASSWORD, "inhibit_login": True},
        )
        assert status == 401
        status, reg = await api.call(
            "POST",
            "/register",
            json={"inhibit_login": False, "auth": dummy(first["session"])},
        )
        assert status == 200, reg
        assert reg["user_id"] == api.user_id("jo")
        assert "access_token" in reg


async def test_taken_username_and_bad_types_answer_before_uia(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        await api.register("kim")
        status, err = await api.call("POST", "/register", json={"username": "kim"})
        assert (status, err["errcode"]) == (400, "M_USER_IN_USE")
        status, err = await api.call("POST", "/register", json={"inhibit_login": "yes"})
        assert (status, err["errcode"]) == (400, "M_BAD_JSON")
