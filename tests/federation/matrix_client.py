"""A small Client-Server API client for federation tests, server-agnostic (drives both
Ranvier and Synapse the same way)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

JsonDict = dict[str, Any]
T = TypeVar("T")
_txn = itertools.count(1)


def q(value: str) -> str:
    return quote(value, safe="")


class MatrixCallError(AssertionError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


@dataclass
class MatrixClient:
    session: aiohttp.ClientSession
    base_url: str
    user_id: str = ""
    token: str = ""
    next_batch: str | None = None
    timeline: dict[str, list[JsonDict]] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: dict[str, Any] | list[tuple[str, str]] | None = None,
        token: bool = True,
    ) -> tuple[int, Any]:
        headers = (
            {"Authorization": f"Bearer {self.token}"} if token and self.token else {}
        )
        url = f"{self.base_url}/_matrix/client/v3{path}"
        async with self.session.request(
            method, url, json=json, params=params, headers=headers
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        status, body = await self.call(method, path, json, **kw)
        if status != 200:
            raise MatrixCallError(method, path, status, body)
        return body

    # -- accounts --------------------------------------------------------------------------
    async def register(self, username: str, password: str = "interop-pw-1") -> None:
        body: JsonDict = {"username": username, "password": password}
        status, first = await self.call("POST", "/register", body, token=False)
        if status == 401:
            body["auth"] = {"type": "m.login.dummy", "session": first.get("session")}
            status, first = await self.call("POST", "/register", body, token=False)
        if status != 200:
            raise MatrixCallError("POST", "/register", status, first)
        self.user_id = first["user_id"]
        self.token = first["access_token"]

    # -- rooms -------------------------------------------------------------------------------
    async def create_room(self, **body: Any) -> str:
        out = await self.ok("POST", "/createRoom", body)
        return str(out["room_id"])

    async def join(self, room: str, via: list[str] | None = None) -> str:
        params = [("via", s) for s in via or []]
        out = await self.ok("POST", f"/join/{q(room)}", {}, params=params)
        return str(out["room_id"])

    async def knock(self, room: str, via: list[str] | None = None) -> str:
        params = [("via", s) for s in via or []]
        out = await self.ok("POST", f"/knock/{q(room)}", {}, params=params)
        return str(out["room_id"])

    async def leave(self, room_id: str) -> None:
        await self.ok("POST", f"/rooms/{q(room_id)}/leave", {})

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.ok("POST", f"/rooms/{q(room_id)}/invite", {"user_id": user_id})

    async def ban(self, room_id: str, user_id: str) -> None:
        await self.ok("POST", f"/rooms/{q(room_id)}/ban", {"user_id": user_id})

    async def send(self, room_id: str, body: str) -> str:
        txn = f"t{next(_txn)}-{time.monotonic_ns()}"
        out = await self.ok(
            "PUT",
            f"/rooms/{q(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
        )
        return str(out["event_id"])

    async def put_state(
        self, room_id: str, etype: str, content: JsonDict, state_key: str = ""
    ) -> str:
        out = await self.ok(
            "PUT", f"/rooms/{q(room_id)}/state/{etype}/{q(state_key)}", content
        )
        return str(out["event_id"])

    async def state(self, room_id: str) -> list[JsonDict]:
        out = await self.ok("GET", f"/rooms/{q(room_id)}/state")
        assert isinstance(out, list)
        return out

    async def state_event(
        self, room_id: str, etype: str, state_key: str = ""
    ) -> JsonDict | None:
        status, out = await self.call(
            "GET", f"/rooms/{q(room_id)}/state/{etype}/{q(state_key)}"
        )
        return out if status == 200 else None

    async def members(self, room_id: str) -> dict[str, str]:
        out = await self.ok("GET", f"/rooms/{q(room_id)}/members")
        return {e["state_key"]: e["content"]["membership"] for e in out["chunk"]}

    async def messages(
        self, room_id: str, limit: int = 100, direction: str = "b"
    ) -> list[JsonDict]:
        out = await self.ok(
            "GET",
            f"/rooms/{q(room_id)}/messages",
            params={"dir": direction, "limit": str(limit)},
        )
        chunk: list[JsonDict] = out["chunk"]
        return chunk

    async def message_bodies(self, room_id: str, limit: int = 100) -> list[str]:
        """Message bodies in the room, oldest first (from back-pagination)."""
        events = await self.messages(room_id, limit)
        return [
            e["content"]["body"]
            for e in reversed(events)
            if e["type"] == "m.room.message" and "body" in e.get("content", {})
        ]

    async def sync(self, timeout_ms: int = 0) -> JsonDict:
        params = {"timeout": str(timeout_ms)}
        if self.next_batch:
            params["since"] = self.next_batch
        out: JsonDict = await self.ok("GET", "/sync", params=params)
        self.next_batch = out["next_batch"]
        for room_id, room in out.get("rooms", {}).get("join", {}).items():
            self.timeline.setdefault(room_id, []).extend(
                room.get("timeline", {}).get("events", [])
            )
        return out

    async def synced_bodies(self, room_id: str) -> list[str]:
        await self.sync()
        return [
            e["content"]["body"]
            for e in self.timeline.get(room_id, [])
            if e["type"] == "m.room.message" and "body" in e.get("content", {})
        ]


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns a truthy value (or raise with its last answer)."""
    deadline = time.monotonic() + within
    last: T | MatrixCallError | None = None
    while True:
        try:
            result = await check()
        except MatrixCallError as e:
            last = e
        else:
            if result:
                return result
            last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
