"""Real client libraries against the server: matrix-nio and mautrix."""

from __future__ import annotations

from pathlib import Path

import nio
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.errors import MUnknownToken
from mautrix.types import LoginType, UserID

from tests.helpers.accounts import PASSWORD, V1, accounts_server


def _nio(
    base_url: str, user: str = "", device_id: str | None = None
) -> nio.AsyncClient:
    config = nio.AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
    return nio.AsyncClient(base_url, user, device_id=device_id, config=config)


async def test_nio_register_two_devices_logout(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, _api):
        registrar = _nio(hs.base_url)
        try:
            # Only a username and a password.
            reg = await registrar.register("neo", PASSWORD, device_name="registrar")
            assert isinstance(reg, nio.RegisterResponse), reg
            assert reg.user_id == "@neo:localhost"
        finally:
            await registrar.close()

        phone, laptop = _nio(hs.base_url, "neo"), _nio(hs.base_url, "@neo:localhost")
        try:
            one = await phone.login(PASSWORD, device_name="phone")
            two = await laptop.login(PASSWORD, device_name="laptop")
            assert isinstance(one, nio.LoginResponse), one
            assert isinstance(two, nio.LoginResponse), two
            assert one.device_id != two.device_id

            devices = await phone.devices()
            assert isinstance(devices, nio.DevicesResponse), devices
            names = {d.id: d.display_name for d in devices.devices}
            assert names[one.device_id] == "phone"
            assert names[two.device_id] == "laptop"
            assert reg.device_id in names

            who = await laptop.whoami()
            assert isinstance(who, nio.WhoamiResponse), who
            assert (who.user_id, who.device_id) == ("@neo:localhost", two.device_id)

            stale_token = laptop.access_token
            out = await laptop.logout()
            assert isinstance(out, nio.LogoutResponse), out
            # The logged-out token is dead; the other device still works.
            laptop.access_token = stale_token
            gone = await laptop.whoami()
            assert isinstance(gone, nio.WhoamiError), gone
            assert gone.status_code == "M_UNKNOWN_TOKEN"
            devices = await phone.devices()
            assert isinstance(devices, nio.DevicesResponse)
            assert two.device_id not in {d.id for d in devices.devices}
        finally:
            await phone.close()
            await laptop.close()


async def test_mautrix_login_whoami(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        await api.register("trinity")
        http = HTTPAPI(base_url=hs.base_url)
        client = ClientAPI(api=http)
        try:
            flows = await client.get_login_flows()
            assert flows.supports_type(LoginType.PASSWORD)
            login = await client.login(
                identifier=UserID("trinity"), password=PASSWORD, device_name="mautrix"
            )
            assert login.user_id == UserID("@trinity:localhost")
            who = await client.whoami()
            assert who.user_id == login.user_id
            assert who.device_id == login.device_id
            await client.logout()
            client.api.token = login.access_token
            try:
                await client.whoami()
            except MUnknownToken:
                pass
            else:
                raise AssertionError("token still valid after logout")
        finally:
            await http.session.close()


async def test_nio_registers_with_a_token(tmp_path: Path) -> None:
    """Token-only registration as nio does it: a first round without auth for the
    session, then the token and dummy stages."""
    config = {"registration": {"enabled": True, "require_token": True}}
    async with accounts_server(tmp_path, overrides=config) as (hs, api):
        accounts = hs.running.homeserver.accounts
        assert accounts is not None
        token = await accounts.registration.create_registration_token(uses_allowed=2)
        client = _nio(hs.base_url)
        try:
            reg = await client.register_with_token("tok1", PASSWORD, token.token)
            assert isinstance(reg, nio.RegisterResponse), reg
            assert reg.user_id == api.user_id("tok1")
            refused = await client.register_with_token("tok2", PASSWORD, "wrong")
            assert not isinstance(refused, nio.RegisterResponse), refused
            # Without a token the dummy stage alone completes no flow.
            plain = await client.register("tok3", PASSWORD)
            assert not isinstance(plain, nio.RegisterResponse), plain
        finally:
            await client.close()
        status, body = await api.call(
            "GET",
            f"/register/m.login.registration_token/validity?token={token.token}",
            prefix=V1,
        )
        assert (status, body) == (200, {"valid": True})  # one of two uses left
