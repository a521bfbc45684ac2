"""Room helpers for API tests: users with tokens, and short calls for common requests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.helpers.accounts import Api, accounts_server
from tests.helpers.homeserver import TestHomeserver

JsonDict = dict[str, Any]
_txn = itertools.count(1)


def q(value: str) -> str:
    """Percent-encode one path segment (room IDs, aliases, event IDs)."""
    return quote(value, safe="")


@dataclass
class User:
    api: Api
    user_id: str
    token: str
    device_id: str

    async def call(
        self, method: str, path: str, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        return await self.api.call(method, path, token=self.token, json=json, **kw)

    async def create_room(self, **body: Any) -> str:
        status, out = await self.call("POST", "/createRoom", body)
        assert status == 200, out
        room_id: str = out["room_id"]
        return room_id

    async def send(
        self, room_id: str, body: str = "hello", etype: str = "m.room.message"
    ) -> str:
        status, out = await self.send_raw(
            room_id, {"msgtype": "m.text", "body": body}, etype
        )
        assert status == 200, out
        event_id: str = out["event_id"]
        return event_id

    async def send_raw(
        self,
        room_id: str,
        content: Any,
        etype: str = "m.room.message",
        txn: str | None = None,
    ) -> tuple[int, Any]:
        txn = txn or f"t{next(_txn)}"
        return await self.call(
            "PUT", f"/rooms/{q(room_id)}/send/{etype}/{txn}", content
        )

    async def put_state(
        self, room_id: str, etype: str, content: Any, state_key: str = ""
    ) -> tuple[int, Any]:
        return await self.call(
            "PUT", f"/rooms/{q(room_id)}/state/{etype}/{q(state_key)}", content
        )

    async def join(self, room: str) -> tuple[int, Any]:
        return await self.call("POST", f"/join/{q(room)}", {})

    async def leave(self, room_id: str) -> tuple[int, Any]:
        return await self.call("POST", f"/rooms/{q(room_id)}/leave", {})

    async def invite(self, room_id: str, user_id: str) -> tuple[int, Any]:
        return await self.call(
            "POST", f"/rooms/{q(room_id)}/invite", {"user_id": user_id}
        )

    async def messages(
        self, room_id: str, query: str = "dir=b&limit=50"
    ) -> tuple[int, Any]:
        return await self.call("GET", f"/rooms/{q(room_id)}/messages?{query}")

    async def timeline_bodies(self, room_id: str) -> list[str]:
        status, out = await self.messages(room_id)
        assert status == 200, out
        return [
            e["content"]["body"]
            for e in reversed(out["chunk"])
            if e["type"] == "m.room.message" and "body" in e["content"]
        ]


async def make_user(api: Api, localpart: str) -> User:
    body = await api.register(localpart)
    return User(api, body["user_id"], body["access_token"], body["device_id"])


async def make_guest(api: Api) -> User:
    status, body = await api.call("POST", "/register?kind=guest", json={})
    assert status == 200, body
    return User(api, body["user_id"], body["access_token"], body["device_id"])


@asynccontextmanager
async def rooms_server(
    tmp_path: Path, *, overrides: JsonDict | None = None
) -> AsyncIterator[tuple[TestHomeserver, Api]]:
    merged: JsonDict = {"registration": {"allow_guests": True}}
    merged.update(overrides or {})
    async with accounts_server(tmp_path, overrides=merged) as (hs, api):
        yield hs, api
