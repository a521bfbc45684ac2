"""A small client-API caller for account tests, and a server on either database engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ranvier.util.clock import Clock
from tests.conftest import fresh_postgres_database, require_postgres
from tests.helpers.homeserver import TestHomeserver, _deep_merge, running_homeserver

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
PASSWORD = "correct horse battery staple"

JsonDict = dict[str, Any]


@dataclass
class Api:
    session: aiohttp.ClientSession
    base_url: str
    server_name: str

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        prefix: str = V3,
    ) -> tuple[int, JsonDict]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(
            method, self.base_url + prefix + path, json=json, data=data, headers=headers
        ) as r:
            body = await r.json()
            return r.status, body

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    async def register(
        self, username: str, password: str = PASSWORD, **extra: Any
    ) -> JsonDict:
        """Register through UIA (dummy stage); returns the 200 body."""
        body = {"username": username, "password": password, **extra}
        status, first = await self.call("POST", "/register", json=body)
        assert status == 401, first
        auth = {"type": "m.login.dummy", "session": first["session"]}
        status, done = await self.call("POST", "/register", json={**body, "auth": auth})
        assert status == 200, done
        return done

    async def login(
        self, user: str, password: str = PASSWORD, **extra: Any
    ) -> JsonDict:
        status, body = await self.call(
            "POST",
            "/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                **extra,
            },
        )
        assert status == 200, body
        return body

    def password_auth(self, localpart: str, password: str = PASSWORD) -> JsonDict:
        return {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }

    async def with_password_uia(
        self, method: str, path: str, token: str, body: JsonDict, localpart: str,
        password: str = PASSWORD, prefix: str = V3,
    ) -> tuple[int, JsonDict]:  # fmt: skip
        """Call a UIA endpoint: the first round must ask for m.login.password."""
        status, first = await self.call(
            method, path, token=token, json=body, prefix=prefix
        )
        assert status == 401, first
        assert first["flows"] == [{"stages": ["m.login.password"]}]
        auth = {**self.password_auth(localpart, password), "session": first["session"]}
        return await self.call(
            method, path, token=token, json={**body, "auth": auth}, prefix=prefix
        )


OPEN_REGISTRATION: JsonDict = {
    "registration": {"enabled": True, "require_token": False}
}


@asynccontextmanager
async def accounts_server(
    tmp_path: Path,
    *,
    engine: str = "sqlite",
    overrides: JsonDict | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[tuple[TestHomeserver, Api]]:
    """A running server (open registration unless overridden) and a client for it."""
    async with AsyncExitStack() as stack:
        merged = _deep_merge(OPEN_REGISTRATION, overrides or {})
        if engine == "postgres":
            dsn = stack.enter_context(fresh_postgres_database(require_postgres()))
            merged = _deep_merge(
                merged, {"database": {"engine": "postgres", "dsn": dsn}}
            )
        hs = await stack.enter_async_context(
            running_homeserver(tmp_path, overrides=merged, clock=clock)
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield hs, Api(session, hs.base_url, hs.server_name)
