"""Bad input to every OAuth endpoint gets the RFC's error answer, never a 500.

RFC 6749 section 4.1.2.1 (authorization errors: shown to the user when the client or
redirect URI is wrong, otherwise sent to the redirect URI), section 5.2 (token errors),
RFC 7591 section 3.2.2 (registration), RFC 7009 (revocation), RFC 8628 section 3.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ranvier.storage.txn import EngineName
from ranvier.util.clock import FakeClock
from tests.helpers.accounts import PASSWORD, Api
from tests.helpers.oauth import (
    CLIENT_URI,
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
OAUTH = "/_ranvier/oauth2"


def _native(**extra: Any) -> JsonDict:
    return {
        "client_uri": CLIENT_URI,
        "application_type": "native",
        "redirect_uris": [REDIRECT_URI],
        **extra,
    }


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({}, "invalid_client_metadata"),
        ({"client_uri": "http://client.example.org/"}, "invalid_client_metadata"),
        ({"client_uri": "https://u:p@client.example.org/"}, "invalid_client_metadata"),
        ({"client_uri": 5}, "invalid_client_metadata"),
        (_native(application_type="desktop"), "invalid_client_metadata"),
        (_native(redirect_uris="http://127.0.0.1/cb"), "invalid_client_metadata"),
        (_native(redirect_uris=[1]), "invalid_client_metadata"),
        (_native(redirect_uris=[]), "invalid_redirect_uri"),
        (_native(redirect_uris=["http://evil.example/cb"]), "invalid_redirect_uri"),
        (_native(redirect_uris=["https://evil.example/cb"]), "invalid_redirect_uri"),
        (_native(redirect_uris=["http://127.0.0.1/cb#frag"]), "invalid_redirect_uri"),
        (_native(redirect_uris=["com.evil.app:/cb"]), "invalid_redirect_uri"),
        (
            _native(redirect_uris=["org.example.client://host/cb"]),
            "invalid_redirect_uri",
        ),
        (_native(redirect_uris=["nodots:/cb"]), "invalid_redirect_uri"),
        (_native(redirect_uris=["http://[::1/cb"]), "invalid_redirect_uri"),
        (
            {"client_uri": CLIENT_URI, "redirect_uris": ["http://127.0.0.1/cb"]},
            "invalid_redirect_uri",
        ),
        (
            _native(logo_uri="https://cdn.evil.example/logo.png"),
            "invalid_client_metadata",
        ),
        (_native(tos_uri="http://client.example.org/tos"), "invalid_client_metadata"),
        (
            _native(**{"policy_uri#fr": "https://evil.example/p"}),
            "invalid_client_metadata",
        ),
        (
            _native(token_endpoint_auth_method="client_secret_basic"),
            "invalid_client_metadata",
        ),
        (_native(grant_types=["password"]), "invalid_client_metadata"),
        (
            _native(grant_types=["implicit", "authorization_code"]),
            "invalid_client_metadata",
        ),
        (_native(response_types=["token"]), "invalid_client_metadata"),
        (_native(client_name=["x"]), "invalid_client_metadata"),
        (
            _native(redirect_uris=["http://127.0.0.1/" + "a" * 5000]),
            "invalid_client_metadata",
        ),
    ],
)
async def test_registration_errors(
    tmp_path: Path, metadata: JsonDict, error: str
) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        status, body = await register_client(api, metadata)
        assert (status, body["error"]) == (400, error), body
        assert isinstance(body["error_description"], str)


async def test_registration_accepts_msc2966_uris(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        status, body = await register_client(
            api,
            _native(
                redirect_uris=[
                    "org.example.client:/callback",
                    "org.example.client.app:/cb",
                    "http://[::1]/cb",
                    "http://localhost:1234/cb",
                    "https://app.client.example.org/cb",
                ],
                logo_uri="https://static.client.example.org/logo.png",
                **{"client_name#fr": "Client de test"},
            ),
        )
        assert status == 201, body
        assert body["token_endpoint_auth_method"] == "none"
        assert body["client_name#fr"] == "Client de test"
        status, body = await register_client(
            api,
            {
                "client_uri": CLIENT_URI,
                "redirect_uris": ["https://client.example.org/cb"],
            },
        )
        assert status == 201, body
        assert body["application_type"] == "web"
        for raw in (b"not json", b"[1, 2]", b"\xff"):
            async with api.session.post(
                api.base_url + OAUTH + "/registration", data=raw
            ) as r:
                assert r.status == 400
                assert (await r.json())["error"] == "invalid_request"


async def test_authorize_errors(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        _, client = await register_client(api)
        client_id = client["client_id"]
        _, challenge = pkce_pair()
        async with Browser.open(api.base_url) as browser:
            # Client or redirect URI wrong: an error page, never a redirect.
            for url in (
                authorize_url(api, "nope", challenge),
                authorize_url(api, client_id, challenge, redirect_uri="http://evil/cb"),
                authorize_url(
                    api, client_id, challenge, redirect_uri=REDIRECT_URI + "x"
                ),
                api.base_url + OAUTH + "/authorize",
                authorize_url(api, client_id, challenge) + "&state=again",
            ):
                status, _, html = await browser.go(url)
                assert status == 400, url
                assert "Something went wrong" in html
            # Anything else goes back to the client with `error` and `state`.
            cases = [
                ({"code_challenge_method": "plain"}, "invalid_request"),
                ({"code_challenge": "short"}, "invalid_request"),
                ({"response_type": "token"}, "unsupported_response_type"),
                ({"scope": "openid"}, "invalid_scope"),
                (
                    {"scope": "urn:matrix:client:api:* urn:synapse:admin:*"},
                    "invalid_scope",
                ),
                (
                    {"scope": "urn:matrix:client:api:* urn:matrix:client:device:a b"},
                    "invalid_scope",
                ),
                ({"prompt": "none"}, "login_required"),
            ]
            for extra, error in cases:
                status, target, _ = await browser.go(
                    authorize_url(api, client_id, challenge, **extra)
                )
                assert status == 0, extra
                params = callback_params(target)
                assert params["error"] == error, (extra, params)
                assert params["state"] == "st4te"
            url = authorize_url(api, client_id, challenge).replace(
                "&code_challenge_method=S256", ""
            )
            status, target, _ = await browser.go(url)
            assert callback_params(target)["error"] == "invalid_request"
            status, target, _ = await browser.go(
                authorize_url(api, client_id, challenge, response_mode="form_post")
            )
            assert "?" in target
            assert callback_params(target)["error"] == "invalid_request"


async def test_token_errors(tmp_path: Path, db_engine: EngineName) -> None:
    clock = FakeClock(1_800_000_000_000)
    async with oauth_server(tmp_path, engine=db_engine, clock=clock) as (_hs, api):
        _, client = await register_client(api)
        _, other = await register_client(api)
        client_id = client["client_id"]

        async def fresh_code(username: str) -> tuple[str, str]:
            verifier, challenge = pkce_pair()
            async with Browser.open(api.base_url) as browser:
                params = await sign_up_and_consent(
                    browser,
                    authorize_url(api, client_id, challenge, prompt="create"),
                    username,
                )
            return params["code"], verifier

        code, verifier = await fresh_code("frank")
        good = {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        cases: list[tuple[dict[str, str], int, str]] = [
            ({}, 400, "invalid_request"),
            ({**good, "grant_type": "password"}, 400, "unsupported_grant_type"),
            ({**good, "client_id": "nope"}, 401, "invalid_client"),
            (
                {k: v for k, v in good.items() if k != "client_id"},
                401,
                "invalid_client",
            ),
            ({k: v for k, v in good.items() if k != "code"}, 400, "invalid_request"),
            (
                {k: v for k, v in good.items() if k != "code_verifier"},
                400,
                "invalid_request",
            ),
            ({**good, "code": "rvc_unknown"}, 400, "invalid_grant"),
            (
                {**good, "grant_type": "refresh_token", "refresh_token": "x"},
                400,
                "invalid_grant",
            ),
            ({**good, "grant_type": "refresh_token"}, 400, "invalid_request"),
        ]
        for form, status, error in cases:
            got_status, body = await token_request(api, form)
            assert (got_status, body.get("error")) == (status, error), (form, body)
        # Wrong verifier, foreign client, wrong redirect URI: each burns its code.
        for bad in (
            {"code_verifier": "x" * 43},
            {"client_id": other["client_id"]},
            {"redirect_uri": REDIRECT_URI + "/"},
        ):
            code, verifier = await fresh_code(f"u{len(str(bad))}{next(iter(bad))[:4]}")
            form = {**good, "code": code, "code_verifier": verifier, **bad}
            status, body = await token_request(api, form)
            assert (status, body["error"]) == (400, "invalid_grant"), (bad, body)
        # Replay: the second exchange fails and revokes what the first one issued.
        status, tokens = await token_request(api, good)
        assert status == 200, tokens
        status, body = await token_request(api, good)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert (await api.call("GET", "/account/whoami", token=tokens["access_token"]))[
            0
        ] == 401
        # Expired code.
        code, verifier = await fresh_code("gina")
        clock.advance(121)
        status, body = await token_request(
            api, {**good, "code": code, "code_verifier": verifier}
        )
        assert (status, body["error"]) == (400, "invalid_grant")
        # Not a form, repeated parameters, malformed Basic credentials.
        url = api.base_url + OAUTH + "/token"
        async with api.session.post(url, json=good) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
        async with api.session.post(
            url,
            data="grant_type=refresh_token&grant_type=authorization_code",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
        async with api.session.post(
            url, data=good, headers={"Authorization": "Basic !!!"}
        ) as r:
            assert (r.status, (await r.json())["error"]) == (401, "invalid_client")


async def test_access_token_expires_and_refresh_needs_its_client(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_800_000_000_000)
    async with oauth_server(tmp_path, clock=clock) as (_hs, api):
        _, client = await register_client(api)
        _, other = await register_client(api)
        verifier, challenge = pkce_pair()
        async with Browser.open(api.base_url) as browser:
            params = await sign_up_and_consent(
                browser,
                authorize_url(api, client["client_id"], challenge, prompt="create"),
                "hank",
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
        clock.advance(301)
        status, body = await api.call(
            "GET", "/account/whoami", token=tokens["access_token"]
        )
        assert (status, body.get("soft_logout")) == (401, True)
        form = {
            "grant_type": "refresh_token",
            "client_id": other["client_id"],
            "refresh_token": tokens["refresh_token"],
        }
        status, body = await token_request(api, form)
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await token_request(
            api, {**form, "client_id": client["client_id"]}
        )
        assert status == 200, body
        # Revocation by another client is refused; bad hints are an error.
        revoke = api.base_url + OAUTH + "/revoke"
        for data, status, error in (
            (
                {"token": body["access_token"], "client_id": other["client_id"]},
                400,
                "unauthorized_client",
            ),
            ({"client_id": client["client_id"]}, 400, "invalid_request"),
            (
                {
                    "token": "x",
                    "client_id": client["client_id"],
                    "token_type_hint": "id_token",
                },
                400,
                "unsupported_token_type",
            ),
            ({"token": "x", "client_id": "nope"}, 401, "invalid_client"),
        ):
            async with api.session.post(revoke, data=data) as r:
                assert (r.status, (await r.json())["error"]) == (status, error)
        assert (await api.call("GET", "/account/whoami", token=body["access_token"]))[
            0
        ] == 200


async def test_device_authorization_errors(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        _, client = await register_client(
            api, _native(grant_types=["authorization_code", "refresh_token"])
        )
        url = api.base_url + OAUTH + "/device_authorization"
        scope = "urn:matrix:client:api:*"
        for data, status, error in (
            ({"client_id": "nope", "scope": scope}, 401, "invalid_client"),
            (
                {"client_id": client["client_id"], "scope": scope},
                400,
                "unauthorized_client",
            ),
        ):
            async with api.session.post(url, data=data) as r:
                assert (r.status, (await r.json())["error"]) == (status, error)
        _, device_client = await register_client(
            api,
            _native(
                grant_types=["urn:ietf:params:oauth:grant-type:device_code"],
                redirect_uris=[],
            ),
        )
        async with api.session.post(
            url, data={"client_id": device_client["client_id"], "scope": "bad"}
        ) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_scope")
        status, body = await token_request(
            api,
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": device_client["client_id"],
                "device_code": "rvd_x",
            },
        )
        assert (status, body["error"]) == (400, "invalid_grant")


async def test_pages_refuse_forged_forms_and_follow_registration_config(
    tmp_path: Path,
) -> None:
    overrides = {"registration": {"enabled": True, "require_token": True}}
    async with oauth_server(tmp_path, overrides=overrides) as (hs, api):
        _, client = await register_client(api)
        _, challenge = pkce_pair()
        url = authorize_url(api, client["client_id"], challenge, prompt="create")
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(url)
            assert "Registration token" in html
            values = {"username": "ivan", "password": PASSWORD, "password2": PASSWORD}
            status, page_url, html = await browser.submit(
                page_url, html, {**values, "token": "wrong"}
            )
            assert status == 400
            assert "Invalid registration token" in html
            status, page_url, html = await browser.submit(
                page_url, html, {**values, "password2": "other", "token": "x"}
            )
            assert "The passwords differ" in html
            # Without the CSRF token (or with another one) the form is refused.
            form_html = html
            # A cross-site POST (another Origin) is refused even with the token.
            from tests.helpers.oauth import parse_forms

            form = next(f for f in parse_forms(form_html) if f.method == "post")
            async with browser.session.post(
                api.base_url + form.action,
                data={**form.fields, **values, "token": "t"},
                headers={"Origin": "https://evil.example"},
                allow_redirects=False,
            ) as r:
                assert r.status == 403
            for csrf in ("", "forged"):
                status, _, html = await browser.submit(
                    page_url, form_html, {**values, "csrf": csrf, "token": "t"}
                )
                assert status == 403
            status, _, html = await browser.go(
                api.base_url + OAUTH + "/consent?request=x"
            )
            assert status == 404
        async with Browser.open(api.base_url) as fresh:
            status, _, html = await fresh.go(
                api.base_url + OAUTH + "/login", data={"username": "a", "password": "b"}
            )
            assert status == 403
        assert hs.server_name in html


async def test_sign_up_disabled(tmp_path: Path) -> None:
    overrides = {"registration": {"enabled": False}}
    async with oauth_server(tmp_path, overrides=overrides) as (_hs, api):
        async with api.session.get(
            api.base_url + "/_matrix/client/v1/auth_metadata"
        ) as r:
            assert (await r.json())["prompt_values_supported"] == []
        _, client = await register_client(api)
        _, challenge = pkce_pair()
        async with Browser.open(api.base_url) as browser:
            status, _, html = await browser.go(
                authorize_url(api, client["client_id"], challenge, prompt="create")
            )
            assert status == 403
            assert "does not accept new accounts" in html
            assert "Create one" not in html


async def _never_500(api: Api, method: str, path: str, **kwargs: Any) -> None:
    async with api.session.request(
        method, api.base_url + path, allow_redirects=False, **kwargs
    ) as r:
        assert r.status < 500, (method, path, kwargs, await r.text())


async def test_garbage_never_500(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        junk: list[dict[str, Any]] = [
            {"data": b"\x00\xff"},
            {"data": "a=%ZZ&b"},
            {"data": {"client_id": "\x00"}},
            {"json": {"client_id": ["x"]}},
            {"data": b"x" * 10, "headers": {"Content-Type": "multipart/form-data"}},
        ]
        for value in ("%ED%A0%80", "%FF", "%C0%80"):
            body = "&".join(
                f"{k}={value}"
                for k in ("grant_type", "client_id", "code", "code_verifier", "token",
                          "refresh_token", "device_code", "scope", "csrf", "username",
                          "password", "next", "request", "user_code", "device_id")
            )  # fmt: skip
            junk.append(
                {
                    "data": body,
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                }
            )
        _, client = await register_client(api)
        for grant in ("authorization_code", "refresh_token",
                      "urn:ietf:params:oauth:grant-type:device_code"):  # fmt: skip
            for value in ("%ED%A0%80", "%FF"):
                junk.append(
                    {
                        "data": f"grant_type={grant}&client_id={client['client_id']}"
                        f"&code={value}&code_verifier={value}&refresh_token={value}"
                        f"&device_code={value}&redirect_uri={value}",
                        "headers": {
                            "Content-Type": "application/x-www-form-urlencoded"
                        },
                    }
                )
        for path in (
            "/token",
            "/revoke",
            "/device_authorization",
            "/registration",
            "/login",
            "/signup",
            "/consent",
            "/device",
            "/logout",
            "/account/end_session",
        ):
            for kwargs in junk:
                await _never_500(api, "POST", OAUTH + path, **kwargs)
        for query in (
            "?client_id=%ED%A0%80&redirect_uri=%FF&scope=%ED%A0%80",
            f"?client_id={client['client_id']}&redirect_uri={REDIRECT_URI}"
            "&response_type=code&code_challenge=%ED%A0%80&state=%ED%A0%80",
            "?user_code=%ED%A0%80&request=%ED%A0%80&next=%ED%A0%80&hint=%ED%A0%80",
            "?client_id=%00",
            "?client_id=" + "x" * 5000,
            "?user_code=%FF",
            "?request=" + "r" * 5000,
            "?next=//evil.example",
        ):
            for path in (
                "/authorize",
                "/login",
                "/signup",
                "/consent",
                "/device",
                "/account",
            ):
                await _never_500(api, "GET", OAUTH + path + query)


async def test_sign_up_with_registration_token_and_login_hint(
    tmp_path: Path, db_engine: EngineName
) -> None:
    overrides = {"registration": {"enabled": True, "require_token": True}}
    async with oauth_server(tmp_path, engine=db_engine, overrides=overrides) as (
        hs,
        api,
    ):
        accounts = hs.running.homeserver.accounts
        assert accounts is not None
        await accounts.registration.create_registration_token("team", uses_allowed=1)
        _, client = await register_client(api)
        verifier, challenge = pkce_pair()
        hint = f"mxid:@judy:{hs.server_name}"
        url = authorize_url(
            api, client["client_id"], challenge, prompt="create", login_hint=hint
        )
        async with Browser.open(api.base_url) as browser:
            status, _, html = await browser.go(url)
            assert 'value="judy"' in html
            params = await sign_up_and_consent(browser, url, "judy", token="team")
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
        row = await accounts.registration_store.get_registration_token("team")
        assert row is not None
        assert (row.pending, row.completed) == (0, 1)
        # The token is used up: the next sign-up is refused.
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(url)
            values = {"username": "kyle", "password": PASSWORD, "password2": PASSWORD}
            status, _, html = await browser.submit(
                page_url, html, {**values, "token": "team"}
            )
            assert status == 400
            assert "Invalid registration token" in html


async def test_web_client_with_default_grant_types_refreshes(tmp_path: Path) -> None:
    async with oauth_server(tmp_path) as (_hs, api):
        web_redirect = "https://app.client.example.org/callback"
        status, client = await register_client(
            api, {"client_uri": CLIENT_URI, "redirect_uris": [web_redirect]}
        )
        assert status == 201, client
        assert client["grant_types"] == ["authorization_code"]
        verifier, challenge = pkce_pair()
        url = authorize_url(
            api, client["client_id"], challenge, prompt="create",
            redirect_uri=web_redirect,
        )  # fmt: skip
        async with Browser.open(api.base_url) as browser:
            status, page_url, html = await browser.go(url)
            values = {"username": "nina", "password": PASSWORD, "password2": PASSWORD}
            status, page_url, html = await browser.submit(page_url, html, values)
            # The consent form may post to the client's redirect origin afterwards.
            async with browser.session.get(page_url) as r:
                assert (
                    "https://app.client.example.org"
                    in r.headers["Content-Security-Policy"]
                )
            status, target, _ = await browser.submit(page_url, html, {}, "allow")
        assert target.startswith(web_redirect + "?")
        code = callback_params(target)["code"]
        status, tokens = await token_request(
            api,
            {"grant_type": "authorization_code", "client_id": client["client_id"],
             "code": code, "redirect_uri": web_redirect, "code_verifier": verifier},
        )  # fmt: skip
        assert status == 200, tokens
        status, body = await token_request(
            api,
            {"grant_type": "refresh_token", "client_id": client["client_id"],
             "refresh_token": tokens["refresh_token"]},
        )  # fmt: skip
        assert status == 200, body
        # The device grant was not registered.
        async with api.session.post(
            api.base_url + OAUTH + "/device_authorization",
            data={"client_id": client["client_id"], "scope": "urn:matrix:client:api:*"},
        ) as r:
            assert (await r.json())["error"] == "unauthorized_client"
