"""A small Matrix Client-Server API client on aiohttp, enough to drive the workloads.

Every workload speaks only the public Client-Server API through this module, so the
same code drives Ranvier and Synapse. An endpoint that answers ``404 M_UNRECOGNIZED``
raises :class:`NotImplementedByServer`, which the harness reports as "n/a".
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

try:
    import orjson

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is a Ranvier dependency

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()


JsonDict = dict[str, Any]

CLIENT_V3: Final = "/_matrix/client/v3"
SLIDING_SYNC: Final = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
PASSWORD: Final = "bench-password-1"


class MatrixError(Exception):
    """The server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        errcode = body.get("errcode") if isinstance(body, dict) else None
        self.errcode: str | None = errcode if isinstance(errcode, str) else None
        super().__init__(f"{method} {path} -> {status} {str(body)[:300]}")


class NotImplementedByServer(Exception):
    """The server does not implement an endpoint (404 M_UNRECOGNIZED)."""

    def __init__(self, method: str, path: str) -> None:
        self.endpoint = f"{method} {path}"
        super().__init__(f"not implemented by the server: {self.endpoint}")


class VerificationError(Exception):
    """A workload's result check failed: the server did not do what was asked."""


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    localpart: str
    access_token: str
    device_id: str


def q(segment: str) -> str:
    """Percent-encode one path segment (room IDs contain ``!`` and ``:``)."""
    return quote(segment, safe="")


class MatrixClient:
    """Client-Server API calls over one shared :class:`aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._txn = itertools.count()

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: JsonDict | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float = 120.0,
        allow_status: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, decoded JSON body)``.

        Raises :class:`NotImplementedByServer` for 404/405 M_UNRECOGNIZED and
        :class:`MatrixError` for any other status >= 400 not in ``allow_status``.
        """
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = URL(self._base + path, encoded=True)
        if params:
            url = url.with_query(params)
        data = _dumps(body) if body is not None else None
        async with self._session.request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            raw = await resp.read()
            status = resp.status
        try:
            decoded: Any = _loads(raw) if raw else {}
        except ValueError:
            decoded = {"raw": raw[:200].decode(errors="replace")}
        if status >= 400 and status not in allow_status:
            errcode = decoded.get("errcode") if isinstance(decoded, dict) else None
            if status in (404, 405) and errcode in ("M_UNRECOGNIZED", None):
                raise NotImplementedByServer(method, path.split("?")[0])
            raise MatrixError(method, path, status, decoded)
        return status, decoded

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: JsonDict | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float = 120.0,
    ) -> JsonDict:
        """Like :meth:`request` but return the JSON object body only."""
        _, decoded = await self.request(
            method, path, token=token, body=body, params=params, timeout_s=timeout_s
        )
        if not isinstance(decoded, dict):
            raise VerificationError(f"{method} {path}: body is not a JSON object")
        return decoded

    # -- account -------------------------------------------------------------------

    async def register(self, localpart: str, password: str = PASSWORD) -> User:
        """Register with the User-Interactive Auth ``m.login.dummy`` flow."""
        path = f"{CLIENT_V3}/register"
        body: JsonDict = {
            "username": localpart,
            "password": password,
            "initial_device_display_name": "bench",
        }
        status, first = await self.request("POST", path, body=body, allow_status=(401,))
        if status == 401:
            flows = first.get("flows", [])
            if not any(f.get("stages") == ["m.login.dummy"] for f in flows):
                raise VerificationError(f"no m.login.dummy registration flow: {flows}")
            body["auth"] = {"type": "m.login.dummy", "session": first.get("session")}
            result = await self.call("POST", path, body=body)
        else:
            result = first
        return _user_from(result, localpart)

    async def login(self, localpart: str, password: str = PASSWORD) -> User:
        body: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
            "initial_device_display_name": "bench",
        }
        result = await self.call("POST", f"{CLIENT_V3}/login", body=body)
        return _user_from(result, localpart)

    async def whoami(self, user: User) -> str:
        result = await self.call(
            "GET", f"{CLIENT_V3}/account/whoami", token=user.access_token
        )
        user_id = result.get("user_id")
        if not isinstance(user_id, str):
            raise VerificationError(f"whoami without user_id: {result}")
        return user_id

    # -- rooms ---------------------------------------------------------------------

    async def create_room(self, user: User, *, name: str | None = None) -> str:
        body: JsonDict = {"preset": "public_chat"}
        if name is not None:
            body["name"] = name
        result = await self.call(
            "POST", f"{CLIENT_V3}/createRoom", token=user.access_token, body=body
        )
        return _str_field(result, "room_id")

    async def join(self, user: User, room_id: str) -> str:
        result = await self.call(
            "POST", f"{CLIENT_V3}/join/{q(room_id)}", token=user.access_token, body={}
        )
        return _str_field(result, "room_id")

    async def send_message(self, user: User, room_id: str, body: str) -> str:
        txn = f"b{next(self._txn)}"
        result = await self.call(
            "PUT",
            f"{CLIENT_V3}/rooms/{q(room_id)}/send/m.room.message/{txn}",
            token=user.access_token,
            body={"msgtype": "m.text", "body": body},
        )
        return _str_field(result, "event_id")

    async def joined_members(self, user: User, room_id: str) -> JsonDict:
        result = await self.call(
            "GET",
            f"{CLIENT_V3}/rooms/{q(room_id)}/joined_members",
            token=user.access_token,
        )
        joined = result.get("joined")
        if not isinstance(joined, dict):
            raise VerificationError(f"joined_members without 'joined': {result}")
        return joined

    async def messages(
        self,
        user: User,
        room_id: str,
        *,
        from_token: str | None,
        limit: int,
        direction: str = "b",
    ) -> JsonDict:
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        return await self.call(
            "GET",
            f"{CLIENT_V3}/rooms/{q(room_id)}/messages",
            token=user.access_token,
            params=params,
        )

    # -- sync ----------------------------------------------------------------------

    async def sync(
        self,
        user: User,
        *,
        since: str | None = None,
        timeout_ms: int = 0,
        filter_json: JsonDict | None = None,
    ) -> JsonDict:
        params = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        if filter_json is not None:
            params["filter"] = json.dumps(filter_json, separators=(",", ":"))
        result = await self.call(
            "GET",
            f"{CLIENT_V3}/sync",
            token=user.access_token,
            params=params,
            timeout_s=timeout_ms / 1000 + 120,
        )
        if not isinstance(result.get("next_batch"), str):
            raise VerificationError("sync response without next_batch")
        return result

    async def sliding_sync(
        self, user: User, body: JsonDict, *, pos: str | None = None
    ) -> JsonDict:
        """Simplified sliding sync (MSC4186), unstable path, `timeout=0`."""
        params = {"timeout": "0"}
        if pos is not None:
            params["pos"] = pos
        result = await self.call(
            "POST",
            SLIDING_SYNC,
            token=user.access_token,
            body=body,
            params=params,
        )
        if not isinstance(result.get("pos"), str):
            raise VerificationError("sliding sync response without pos")
        return result


def _str_field(result: JsonDict, key: str) -> str:
    value = result.get(key)
    if not isinstance(value, str) or not value:
        raise VerificationError(f"response without {key!r}: {str(result)[:200]}")
    return value


def _user_from(result: JsonDict, localpart: str) -> User:
    user = User(
        user_id=_str_field(result, "user_id"),
        localpart=localpart,
        access_token=_str_field(result, "access_token"),
        device_id=_str_field(result, "device_id"),
    )
    if not user.user_id.startswith(f"@{localpart}:"):
        raise VerificationError(f"registered {localpart!r} but got {user.user_id!r}")
    return user


def joined_rooms_of(sync: JsonDict) -> JsonDict:
    """The ``rooms.join`` section of a sync response (empty when absent)."""
    rooms = sync.get("rooms") or {}
    joined = rooms.get("join") or {}
    return joined if isinstance(joined, dict) else {}


def timeline_events(room: JsonDict) -> list[JsonDict]:
    timeline = room.get("timeline") or {}
    events = timeline.get("events") or []
    return [e for e in events if isinstance(e, dict)]


def state_events(room: JsonDict) -> list[JsonDict]:
    state = room.get("state") or {}
    events = state.get("events") or []
    return [e for e in events if isinstance(e, dict)]
