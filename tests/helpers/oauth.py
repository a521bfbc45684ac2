"""An OAuth-enabled server (issuer = its real loopback URL) and a browser-less client
that drives the authorization pages the way a browser would: GET, parse the form,
POST it with its cookies, follow redirects until the client's redirect URI."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp

from ranvier.util.clock import Clock
from tests.helpers.accounts import PASSWORD, Api, accounts_server
from tests.helpers.homeserver import TestHomeserver, _deep_merge

JsonDict = dict[str, Any]
REDIRECT_URI = "http://127.0.0.1:7777/callback"
CLIENT_URI = "https://client.example.org/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def oauth_server(
    tmp_path: Path,
    *,
    engine: str = "sqlite",
    overrides: JsonDict | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[tuple[TestHomeserver, Api]]:
    # The issuer must be the server's real URL, so the port is chosen before start-up;
    # another process may take it in between, hence the retries.
    async with AsyncExitStack() as stack:
        started: tuple[TestHomeserver, Api] | None = None
        for attempt in range(3):
            port = free_port()
            base: JsonDict = {
                "public_baseurl": f"http://127.0.0.1:{port}/",
                "oauth": {"enabled": True},
                "listeners": [
                    {
                        "port": port,
                        "bind_addresses": ["127.0.0.1"],
                        "resources": ["client", "federation", "keys", "media"],
                    }
                ],
            }
            server = accounts_server(
                tmp_path,
                engine=engine,
                overrides=_deep_merge(base, overrides or {}),
                clock=clock,
            )
            try:
                started = await stack.enter_async_context(server)
            except OSError:
                if attempt == 2:
                    raise
                continue
            break
        assert started is not None
        yield started


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_FORM = re.compile(
    r'<form (?:class="\w+" )?method="(post|get)" action="([^"]+)"[^>]*>(.*?)</form>',
    re.S,
)
_INPUT = re.compile(r"<input ([^>]*)>")
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_BUTTON = re.compile(r'<button type=submit(?: name="(\w+)" value="(\w+)")?')


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str]
    buttons: list[tuple[str, str]]


def parse_forms(html: str) -> list[Form]:
    forms = []
    for method, action, inner in _FORM.findall(html):
        fields: dict[str, str] = {}
        for attrs in _INPUT.findall(inner):
            a = dict(_ATTR.findall(attrs))
            if "name" in a:
                fields[a["name"]] = unescape(a.get("value", ""))
        buttons = [(n, v) for n, v in _BUTTON.findall(inner) if n]
        forms.append(Form(method, unescape(action), fields, buttons))
    return forms


@dataclass
class Browser:
    """Cookies plus manual redirects, stopping at the client's redirect URI."""

    base_url: str
    session: aiohttp.ClientSession
    pages: list[str] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def open(cls, base_url: str) -> AsyncIterator[Browser]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            yield cls(base_url, session)

    async def go(
        self, url: str, *, data: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Request `url`, follow same-server redirects; returns (status, final URL,
        body). A redirect elsewhere (the client) ends with status 0 and that URL."""
        method = "POST" if data is not None else "GET"
        for _ in range(10):
            async with self.session.request(
                method, url, data=data, allow_redirects=False
            ) as r:
                body = await r.text()
                if r.status in (302, 303):
                    target = urljoin(url, r.headers["Location"])
                    if not target.startswith(self.base_url):
                        return 0, target, ""
                    url, method, data = target, "GET", None
                    continue
                self.pages.append(body)
                return r.status, url, body
        raise AssertionError("redirect loop")

    async def submit(
        self,
        page_url: str,
        html: str,
        values: dict[str, str],
        button: str | None = None,
    ) -> tuple[int, str, str]:
        form = next(f for f in parse_forms(html) if f.method == "post")
        data = {**form.fields, **values}
        if button is not None:
            data["action"] = button
        return await self.go(urljoin(page_url, form.action), data=data)


async def register_client(
    api: Api, metadata: JsonDict | None = None
) -> tuple[int, JsonDict]:
    async with api.session.get(api.base_url + "/_matrix/client/v1/auth_metadata") as r:
        meta = await r.json()
    body = (
        metadata
        if metadata is not None
        else {
            "client_name": "Test client",
            "client_uri": CLIENT_URI,
            "application_type": "native",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    )
    async with api.session.post(meta["registration_endpoint"], json=body) as r:
        return r.status, await r.json()


def authorize_url(
    api: Api, client_id: str, challenge: str, *, device_id: str = "OAUTHDEV01",
    state: str = "st4te", **extra: str,
) -> str:  # fmt: skip
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": f"urn:matrix:client:api:* urn:matrix:client:device:{device_id}",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{api.base_url}/_ranvier/oauth2/authorize?{urlencode(params)}"


def callback_params(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    raw = parts.fragment or parts.query
    return {k: v[0] for k, v in parse_qs(raw).items()}


async def sign_up_and_consent(
    browser: Browser, url: str, username: str, password: str = PASSWORD,
    *, token: str | None = None,
) -> dict[str, str]:  # fmt: skip
    """From an authorize URL with prompt=create: sign up, allow, return callback params."""
    status, page_url, html = await browser.go(url)
    assert status == 200, html
    assert "Create account" in html
    values = {"username": username, "password": password, "password2": password}
    if token is not None:
        values["token"] = token
    status, page_url, html = await browser.submit(page_url, html, values)
    assert status == 200, html
    assert "Allow access?" in html
    status, target, _ = await browser.submit(page_url, html, {}, "allow")
    assert status == 0, target
    assert target.startswith(REDIRECT_URI)
    return callback_params(target)


async def token_request(api: Api, form: dict[str, str]) -> tuple[int, JsonDict]:
    async with api.session.post(
        api.base_url + "/_ranvier/oauth2/token", data=form
    ) as r:
        return r.status, await r.json()
