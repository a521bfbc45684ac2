"""Element Web's sign-up, through matrix-js-sdk (tests/js/register_like_element_web.mjs).

Element sends `POST /register` with no username, password or `auth` before it shows its
form; a 400 there ("Unable to query for supported registration methods") means nobody
can sign up. Both engines.
"""

from __future__ import annotations

from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD, accounts_server
from tests.helpers.js import run_js_client


async def test_element_web_signs_up(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        out = await run_js_client(
            "register_like_element_web.mjs",
            {"HS_URL": hs.base_url, "USERNAME": "elena", "PASSWORD": PASSWORD},
        )
    user_id = api.user_id("elena")
    assert "m.login.password" in out["loginFlows"]
    assert out["probe"] == {
        "status": 401,
        "errcode": None,
        "flows": [{"stages": ["m.login.dummy"]}],
        "params": {},
        "hasSession": True,
    }
    assert out["registered"]["user_id"] == user_id
    assert out["registered"]["hasAccessToken"]
    assert out["whoami"]["user_id"] == user_id
    assert out["whoami"]["device_id"] == out["registered"]["device_id"]
    assert out["devices"] == ["app.element.io: Chrome on Linux"]
    assert out["login"] == {"user_id": user_id, "newDevice": True}
