"""Helpers for sync tests: users, rooms and messages through the client API."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

import orjson

from tests.helpers.accounts import Api

JsonDict = dict[str, Any]


@dataclass
class User:
    api: Api
    user_id: str
    token: str
    device_id: str

    async def call(
        self, method: str, path: str, json: Any = None
    ) -> tuple[int, JsonDict]:
        return await self.api.call(method, path, token=self.token, json=json)

    async def ok(self, method: str, path: str, json: Any = None) -> JsonDict:
        status, body = await self.call(method, path, json)
        assert status == 200, (method, path, status, body)
        return body

    async def sync(
        self,
        since: str | None = None,
        *,
        timeout_ms: int = 0,
        filter: JsonDict | str | None = None,
        **params: str,
    ) -> JsonDict:
        query: dict[str, str] = dict(params)
        if since is not None:
            query["since"] = since
        if timeout_ms:
            query["timeout"] = str(timeout_ms)
        if filter is not None:
            query["filter"] = (
                filter if isinstance(filter, str) else orjson.dumps(filter).decode()
            )
        path = "/sync"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return await self.ok("GET", path)

    async def create_room(self, **body: Any) -> str:
        created = await self.ok("POST", "/createRoom", body)
        room_id: str = created["room_id"]
        return room_id

    async def send(self, room_id: str, body: str, txn: str | None = None) -> str:
        txn = txn or f"t{id(body)}-{body}"
        sent = await self.ok(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/{urllib.parse.quote(txn)}",
            {"msgtype": "m.text", "body": body},
        )
        event_id: str = sent["event_id"]
        return event_id

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.ok("POST", f"/rooms/{room_id}/invite", {"user_id": user_id})

    async def join(self, room_id: str) -> None:
        await self.ok("POST", f"/rooms/{room_id}/join", {})

    async def leave(self, room_id: str) -> None:
        await self.ok("POST", f"/rooms/{room_id}/leave", {})


async def new_user(api: Api, localpart: str) -> User:
    reg = await api.register(localpart)
    return User(api, reg["user_id"], reg["access_token"], reg["device_id"])


async def another_device(user: User, device_id: str) -> User:
    login = await user.api.login(user.user_id.split(":")[0][1:], device_id=device_id)
    return User(user.api, user.user_id, login["access_token"], login["device_id"])


def timeline_bodies(sync: JsonDict, room_id: str) -> list[str]:
    room = sync["rooms"]["join"].get(room_id) or sync["rooms"]["leave"].get(room_id)
    if room is None:
        return []
    return [
        e["content"]["body"]
        for e in room["timeline"]["events"]
        if e["type"] == "m.room.message"
    ]


def state_types(room: JsonDict) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room["state"]["events"]}


def ephemeral(sync: JsonDict, room_id: str, etype: str) -> list[JsonDict]:
    room = sync["rooms"]["join"].get(room_id)
    if room is None:
        return []
    return [e for e in room["ephemeral"]["events"] if e["type"] == etype]
