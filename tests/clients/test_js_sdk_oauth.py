"""matrix-js-sdk's OAuth 2.0 API helpers against Ranvier (tests/js/oauth_like_element.mjs).

The SDK does discovery (`getAuthMetadata`, which validates the metadata as Element
does), dynamic registration, builds the authorization URL (PKCE S256, `prompt=create`,
fragment response mode), exchanges the code, refreshes and revokes. The browser part in
between (sign-up and consent pages) is driven from Python. Then the device grant, with
the SDK polling while the test approves the code. Both engines.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD
from tests.helpers.js import run_js_client
from tests.helpers.oauth import Browser, callback_params, oauth_server

REDIRECT = "http://127.0.0.1:4321/callback"


async def test_js_sdk_signs_up_through_oauth(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        env = {"HS_URL": api.base_url, "REDIRECT_URI": REDIRECT}
        start = await run_js_client("oauth_like_element.mjs", {**env, "STEP": "start"})
        assert start["issuer"] == api.base_url + "/"
        async with Browser.open(api.base_url) as browser:
            _, page_url, html = await browser.go(start["url"])
            assert "Create account" in html
            values = {"username": "jess", "password": PASSWORD, "password2": PASSWORD}
            _, page_url, html = await browser.submit(page_url, html, values)
            assert "Element (js-sdk test)" in html
            assert start["deviceId"] in html
            _status, target, _ = await browser.submit(page_url, html, {}, "allow")
        assert target.startswith(REDIRECT + "#")
        params = callback_params(target)
        assert params["state"] == "js-state"
        finish = await run_js_client(
            "oauth_like_element.mjs",
            {
                **env,
                "STEP": "finish",
                "CLIENT_ID": start["clientId"],
                "DEVICE_ID": start["deviceId"],
                "CODE_VERIFIER": start["codeVerifier"],
                "CODE": params["code"],
            },
        )
    user_id = api.user_id("jess")
    assert finish["tokenType"] == "Bearer"
    assert finish["expiresIn"] == 300
    assert f"urn:matrix:client:device:{start['deviceId']}" in finish["scope"]
    assert finish["whoami"]["user_id"] == user_id
    assert finish["whoami"]["device_id"] == start["deviceId"]
    assert finish["oldTokenAfterRefresh"]["errcode"] == "M_UNKNOWN_TOKEN"
    assert finish["newToken"]["user_id"] == user_id
    assert finish["afterRevoke"] == {"errcode": "M_UNKNOWN_TOKEN", "status": 401}
    assert finish["refreshAfterRevoke"] == {
        "name": "OAuth2HTTPError",
        "status": 400,
        "error": "invalid_grant",
    }


async def test_js_sdk_device_grant(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        await api.register("kim")
        code_file = tmp_path / "user_code"
        env = {
            "HS_URL": api.base_url,
            "REDIRECT_URI": REDIRECT,
            "STEP": "device",
            "USER_CODE_FILE": str(code_file),
        }
        js = asyncio.ensure_future(run_js_client("oauth_like_element.mjs", env))
        for _ in range(200):
            if code_file.exists() and code_file.read_text():
                break
            assert not js.done(), js.result()
            await asyncio.sleep(0.05)
        user_code = code_file.read_text()
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(
                f"{api.base_url}/_ranvier/oauth2/device?user_code={user_code}"
            )
            status, page_url, html = await browser.submit(
                page_url, html, {"username": "kim", "password": PASSWORD}
            )
            assert "TV (js-sdk test)" in html
            status, _, html = await browser.submit(page_url, html, {}, "allow")
            assert status == 200
        out = await asyncio.wait_for(js, 60)
    assert out["result"] == "token"
    assert out["whoami"]["user_id"] == api.user_id("kim")
    assert out["whoami"]["device_id"] == out["deviceId"]
