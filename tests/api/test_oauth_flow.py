"""The OAuth 2.0 API end to end, browser-less: discovery, dynamic registration, the
authorization code grant with PKCE through the HTML pages (sign-up, sign-in, consent),
the token endpoint, refresh rotation, revocation, the device grant, and the resulting
access token on the Client-Server API. Both engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD, Api
from tests.helpers.oauth import (
    REDIRECT_URI,
    Browser,
    authorize_url,
    callback_params,
    oauth_server,
    pkce_pair,
    register_client,
    sign_up_and_consent,
    token_request,
)

JsonDict = dict[str, Any]


async def _get(api: Api, path: str) -> tuple[int, JsonDict]:
    async with api.session.get(api.base_url + path) as r:
        return r.status, await r.json()


async def _code_flow(
    api: Api, username: str, *, device_id: str = "OAUTHDEV01"
) -> tuple[str, JsonDict]:
    status, client = await register_client(api)
    assert status == 201, client
    verifier, challenge = pkce_pair()
    async with Browser.open(api.base_url) as browser:
        params = await sign_up_and_consent(
            browser,
            authorize_url(
                api,
                client["client_id"],
                challenge,
                device_id=device_id,
                prompt="create",
            ),
            username,
        )
    assert params["state"] == "st4te"
    status, tokens = await token_request(
        api,
        {
            "grant_type": "authorization_code",
            "client_id": client["client_id"],
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert status == 200, tokens
    return client["client_id"], tokens


async def test_discovery(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        issuer = api.base_url + "/"
        status, meta = await _get(api, "/_matrix/client/v1/auth_metadata")
        assert status == 200
        AuthorizationServerMetadata(meta).validate()
        assert meta["issuer"] == issuer
        assert meta["response_types_supported"] == ["code"]
        assert meta["response_modes_supported"] == ["query", "fragment"]
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert set(meta["grant_types_supported"]) == {
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        }
        assert "create" in meta["prompt_values_supported"]
        for key in (
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
            "revocation_endpoint",
            "device_authorization_endpoint",
            "account_management_uri",
        ):
            assert meta[key].startswith(issuer), key
        assert "org.matrix.session_end" in meta["account_management_actions_supported"]
        for path in (
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            "/.well-known/openid-configuration",
        ):
            assert await _get(api, path) == (200, meta)
        assert await _get(
            api, "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer"
        ) == (200, {"issuer": issuer})
        # Both: classic login keeps working.
        status, flows = await api.call("GET", "/login")
        assert status == 200
        assert {"type": "m.login.password"} in flows["flows"]


async def test_oauth_is_off_by_default(tmp_path: Path) -> None:
    from tests.helpers.accounts import accounts_server

    async with accounts_server(tmp_path) as (_hs, api):
        status, body = await _get(api, "/_matrix/client/v1/auth_metadata")
        assert status == 404
        assert body["errcode"] == "M_UNRECOGNIZED"


async def test_oauth_only_mode_drops_password_api(tmp_path: Path) -> None:
    async with oauth_server(tmp_path, overrides={"oauth": {"password_api": False}}) as (
        _hs,
        api,
    ):
        for method, path in (
            ("GET", "/login"),
            ("POST", "/login"),
            ("POST", "/register"),
        ):
            status, body = await api.call(method, path, json={})
            assert status == 404, (path, body)
            assert body["errcode"] == "M_UNRECOGNIZED"
        _client_id, tokens = await _code_flow(api, "olga")
        status, me = await api.call(
            "GET", "/account/whoami", token=tokens["access_token"]
        )
        assert status == 200
        assert me["user_id"] == api.user_id("olga")


async def test_sign_up_code_grant_refresh_and_logout(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        client_id, tokens = await _code_flow(api, "alice")
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 300
        assert "urn:matrix:client:device:OAUTHDEV01" in tokens["scope"].split()
        access = tokens["access_token"]
        status, me = await api.call("GET", "/account/whoami", token=access)
        assert status == 200, me
        assert me == {
            "user_id": api.user_id("alice"),
            "device_id": "OAUTHDEV01",
            "is_guest": False,
        }
        status, _sync = await api.call("GET", "/sync?timeout=0", token=access)
        assert status == 200
        status, device = await api.call("GET", "/devices/OAUTHDEV01", token=access)
        assert (status, device["display_name"]) == (200, "Test client")
        # The account also signs in with its password (classic API still on).
        assert (await api.login("alice"))["user_id"] == api.user_id("alice")

        # Refresh: rotation, the old access token dies, the new one works.
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": tokens["refresh_token"],
        }
        status, new = await token_request(api, form)
        assert status == 200, new
        assert new["refresh_token"] != tokens["refresh_token"]
        assert (await api.call("GET", "/account/whoami", token=access))[0] == 401
        status, me = await api.call("GET", "/account/whoami", token=new["access_token"])
        assert (status, me["device_id"]) == (200, "OAUTHDEV01")

        # Logout on the client API kills the token and the refresh chain.
        status, _ = await api.call(
            "POST", "/logout", token=new["access_token"], json={}
        )
        assert status == 200
        assert (await api.call("GET", "/account/whoami", token=new["access_token"]))[
            0
        ] == 401
        status, err = await token_request(
            api, {**form, "refresh_token": new["refresh_token"]}
        )
        assert (status, err["error"]) == (400, "invalid_grant")


async def test_refresh_token_reuse_ends_the_session(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        client_id, tokens = await _code_flow(api, "bob")
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": tokens["refresh_token"],
        }
        status, new = await token_request(api, form)
        assert status == 200
        # The old refresh token again: a stolen copy. The whole session ends.
        status, err = await token_request(api, form)
        assert (status, err["error"]) == (400, "invalid_grant")
        assert (await api.call("GET", "/account/whoami", token=new["access_token"]))[
            0
        ] == 401
        status, err = await token_request(
            api, {**form, "refresh_token": new["refresh_token"]}
        )
        assert (status, err["error"]) == (400, "invalid_grant")
        login = await api.login("bob")
        status, devices = await api.call("GET", "/devices", token=login["access_token"])
        assert "OAUTHDEV01" not in [d["device_id"] for d in devices["devices"]]


async def test_revocation(tmp_path: Path, db_engine: EngineName) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        client_id, tokens = await _code_flow(api, "carol")
        revoke = api.base_url + "/_ranvier/oauth2/revoke"
        # Unknown tokens are fine (RFC 7009 2.2).
        async with api.session.post(
            revoke, data={"token": "nonsense", "client_id": client_id}
        ) as r:
            assert r.status == 200
        async with api.session.post(
            revoke,
            data={
                "token": tokens["access_token"],
                "client_id": client_id,
                "token_type_hint": "access_token",
            },
        ) as r:
            assert r.status == 200, await r.text()
        status, err = await api.call(
            "GET", "/account/whoami", token=tokens["access_token"]
        )
        assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        status, err = await token_request(
            api,
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "refresh_token": tokens["refresh_token"],
            },
        )
        assert (status, err["error"]) == (400, "invalid_grant")


async def test_sign_in_existing_account_fragment_mode(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        await api.register("dave")
        status, client = await register_client(api)
        verifier, challenge = pkce_pair()
        url = authorize_url(
            api, client["client_id"], challenge, response_mode="fragment"
        )
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(url)
            assert status == 200
            assert "Sign in" in html
            csp = "frame-ancestors 'none'"
            async with browser.session.get(page_url) as r:
                assert csp in r.headers["Content-Security-Policy"]
                assert r.headers["X-Frame-Options"] == "DENY"
            status, page_url, html = await browser.submit(
                page_url, html, {"username": "dave", "password": "wrong"}
            )
            assert status == 401
            assert "Wrong username or password" in html
            status, page_url, html = await browser.submit(
                page_url, html, {"username": "dave", "password": PASSWORD}
            )
            assert status == 200
            assert "Allow access?" in html
            assert "Test client" in html
            status, target, _ = await browser.submit(page_url, html, {}, "allow")
            assert status == 0
            assert "#" in target
            assert "?" not in target
            params = callback_params(target)
            # A second authorization in the same browser skips the sign-in.
            status, page_url, html = await browser.go(url)
            assert "Allow access?" in html
            status, target, _ = await browser.submit(page_url, html, {}, "deny")
            assert callback_params(target)["error"] == "access_denied"
        status, tokens = await token_request(
            api,
            {
                "grant_type": "authorization_code",
                "client_id": client["client_id"],
                "code": params["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert status == 200, tokens
        status, me = await api.call(
            "GET", "/account/whoami", token=tokens["access_token"]
        )
        assert me["user_id"] == api.user_id("dave")


async def test_device_grant_and_account_page(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        await api.register("erin")
        status, client = await register_client(api)
        client_id = client["client_id"]
        async with api.session.post(
            api.base_url + "/_ranvier/oauth2/device_authorization",
            data={
                "client_id": client_id,
                "scope": "urn:matrix:client:api:* urn:matrix:client:device:TVDEVICE01",
            },
        ) as r:
            assert r.status == 200
            grant = await r.json()
        poll = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": client_id,
            "device_code": grant["device_code"],
        }
        status, err = await token_request(api, poll)
        assert (status, err["error"]) == (400, "authorization_pending")
        status, err = await token_request(api, poll)
        assert err["error"] == "slow_down"
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(
                grant["verification_uri_complete"]
            )
            status, page_url, html = await browser.submit(
                page_url, html, {"username": "erin", "password": PASSWORD}
            )
            assert "Allow access?" in html
            assert "TVDEVICE01" in html
            status, _, html = await browser.submit(page_url, html, {}, "allow")
            assert status == 200
            assert "signed in" in html
            status, tokens = await token_request(api, poll)
            assert status == 200, tokens
            status, me = await api.call(
                "GET", "/account/whoami", token=tokens["access_token"]
            )
            assert me["device_id"] == "TVDEVICE01"
            # Single use.
            status, err = await token_request(api, poll)
            assert err["error"] == "expired_token"
            # The account page lists the device and signs it out.
            status, page_url, html = await browser.go(
                api.base_url + "/_ranvier/oauth2/account"
            )
            assert "TVDEVICE01" in html
            from tests.helpers.oauth import parse_forms

            form = next(
                f
                for f in parse_forms(html)
                if f.fields.get("device_id") == "TVDEVICE01"
            )
            status, _, html = await browser.go(
                api.base_url + form.action, data=form.fields
            )
            assert status == 200
            assert "TVDEVICE01" not in html
        status, _ = await api.call(
            "GET", "/account/whoami", token=tokens["access_token"]
        )
        assert status == 401


async def test_cross_signing_reset_with_m_oauth(
    tmp_path: Path, db_engine: EngineName
) -> None:
    """MSC4312: an OAuth session replaces its cross-signing keys through the m.oauth
    stage, approved on the account page; password tokens keep m.login.password."""
    from tests.helpers.e2e import cross_signing_set
    from tests.helpers.oauth import parse_forms

    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        status, client = await register_client(api)
        verifier, challenge = pkce_pair()
        user_id = api.user_id("lena")
        async with Browser.open(api.base_url) as browser:
            params = await sign_up_and_consent(
                browser,
                authorize_url(api, client["client_id"], challenge, prompt="create"),
                "lena",
            )
            _, tokens = await token_request(
                api,
                {
                    "grant_type": "authorization_code",
                    "client_id": client["client_id"],
                    "code": params["code"],
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
            )
            token = tokens["access_token"]
            path = "/keys/device_signing/upload"
            first = cross_signing_set(user_id)
            assert (await api.call("POST", path, token=token, json=first.body))[
                0
            ] == 200
            second = cross_signing_set(user_id).body
            status, uia = await api.call("POST", path, token=token, json=second)
            assert status == 401, uia
            assert uia["flows"] == [
                {"stages": ["m.oauth"]},
                {"stages": ["org.matrix.cross_signing_reset"]},
            ]
            url = uia["params"]["m.oauth"]["url"]
            assert url.endswith("?action=org.matrix.cross_signing_reset")
            # Retrying before approval (even naming the stage) asks again.
            retry = {**second, "auth": {"type": "m.oauth", "session": uia["session"]}}
            assert (await api.call("POST", path, token=token, json=retry))[0] == 401
            # Password login tokens of the same user still get the password stage.
            login = await api.login("lena")
            status, pw = await api.call(
                "POST", path, token=login["access_token"], json=second
            )
            assert pw["flows"] == [{"stages": ["m.login.password"]}]
            # The user approves on the account page (already signed in there).
            status, page_url, html = await browser.go(url)
            assert "Reset your identity?" in html
            status, _, html = await browser.submit(page_url, html, {})
            assert "Reset allowed" in html
            assert parse_forms(html) == []
        retry = {**second, "auth": {"session": uia["session"]}}
        status, body = await api.call("POST", path, token=token, json=retry)
        assert status == 200, body
        # The approval was used up.
        third = cross_signing_set(user_id).body
        assert (await api.call("POST", path, token=token, json=third))[0] == 401


async def test_account_page_password_change(tmp_path: Path) -> None:
    from tests.helpers.oauth import parse_forms

    async with oauth_server(tmp_path) as (_hs, api):
        await api.register("mona")
        account = api.base_url + "/_ranvier/oauth2/account"
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(account)
            status, page_url, html = await browser.submit(
                page_url, html, {"username": "mona", "password": PASSWORD}
            )
            assert "Your sessions" in html
            form = next(
                f for f in parse_forms(html) if f.action.endswith("/account/password")
            )
            new = "a much newer passphrase"
            fields = {**form.fields, "password": new, "password2": new}
            status, _, html = await browser.go(
                api.base_url + form.action, data={**fields, "current": "wrong"}
            )
            assert status == 401
            status, _, html = await browser.go(
                api.base_url + form.action, data={**fields, "current": PASSWORD}
            )
            assert (status, "Password changed" in html) == (200, True)
        status, _ = await api.call(
            "POST",
            "/login",
            json={"type": "m.login.password", "user": "mona", "password": PASSWORD},
        )
        assert status == 403
        assert (await api.login("mona", new))["user_id"] == api.user_id("mona")


async def test_openid_scope_gets_a_verifiable_id_token(
    tmp_path: Path, db_engine: EngineName
) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    async with oauth_server(tmp_path, engine=db_engine) as (_hs, api):
        status, client = await register_client(api)
        verifier, challenge = pkce_pair()
        scope = "openid urn:matrix:client:api:* urn:matrix:client:device:IDTOKENDEV"
        async with Browser.open(api.base_url) as browser:
            params = await sign_up_and_consent(
                browser,
                authorize_url(
                    api, client["client_id"], challenge, prompt="create",
                    scope=scope, nonce="n-0nce",
                ),
                "pia",
            )  # fmt: skip
        status, tokens = await token_request(
            api,
            {
                "grant_type": "authorization_code",
                "client_id": client["client_id"],
                "code": params["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert status == 200, tokens
        _, meta = await _get(api, "/.well-known/openid-configuration")
        async with api.session.get(meta["jwks_uri"]) as r:
            jwks = await r.json()
        assert all("d" not in key for key in jwks["keys"])
        token = jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks))
        assert token.header["alg"] == "RS256"
        assert token.claims["iss"] == meta["issuer"]
        assert token.claims["sub"] == api.user_id("pia")
        assert token.claims["aud"] == client["client_id"]
        assert token.claims["nonce"] == "n-0nce"
        async with api.session.get(
            meta["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ) as r:
            assert await r.json() == {"sub": api.user_id("pia")}
        # Without `openid`, no ID token.
        _client_id, plain = await _code_flow(api, "quinn")
        assert "id_token" not in plain
