"""OpenID through matrix-nio and the federation `userinfo` endpoint, as Element Call's
LiveKit JWT service uses them: the token names its user until it expires, is stored only
hashed, and no other token (an access token included) is accepted."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from nio import GetOpenIDTokenResponse

from ranvier.storage.txn import EngineName
from tests.clients.test_rooms_nio import nio_client
from tests.helpers.accounts import accounts_server

USERINFO = "/_matrix/federation/v1/openid/userinfo"


async def _userinfo(base_url: str, token: str | None) -> tuple[int, dict[str, str]]:
    params = {} if token is None else {"access_token": token}
    async with (
        aiohttp.ClientSession() as s,
        s.get(base_url + USERINFO, params=params) as r,
    ):
        return r.status, await r.json()


async def test_openid_token_round_trip(tmp_path: Path, db_engine: EngineName) -> None:
    async with (
        accounts_server(tmp_path, engine=db_engine) as (hs, api),
        nio_client(hs.base_url, api, "alice") as alice,
    ):
        resp = await alice.get_openid_token(alice.user_id)
        assert isinstance(resp, GetOpenIDTokenResponse), resp
        assert resp.token_type == "Bearer"
        assert resp.matrix_server_name == "localhost"
        assert resp.expires_in == 3600
        assert await _userinfo(hs.base_url, resp.access_token) == (
            200,
            {"sub": alice.user_id},
        )
        for token in (None, "rvo_forged", alice.access_token):
            status, body = await _userinfo(hs.base_url, token)
            assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), token
        # Somebody else's user ID is refused.
        status, body = await api.call(
            "POST",
            "/user/@bob:localhost/openid/request_token",
            token=alice.access_token,
            json={},
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await api.call(
            "POST", f"/user/{alice.user_id}/openid/request_token", json={}
        )
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
