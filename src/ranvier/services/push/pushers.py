"""Pushers (spec: Push Notifications > `GET /pushers`, `POST /pushers/set`).

A pusher belongs to the device that set it, and goes when that device is deleted
(Synapse ties pushers to access tokens the same way). Kinds:
* `http`: `data.url` is the push gateway's `/_matrix/push/v1/notify` (spec: "MUST be
  an HTTPS URL with a path of /_matrix/push/v1/notify"; plain http is accepted for
  gateways on a private network, which the outbound IP policy still governs);
* `email`: `app_id` is `m.email` and `pushkey` the address to mail (needs SMTP set up).

Delivery is the workers' job (`workers/push`); this service tells them through
`PusherLifecycle` when pushers come and go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from ranvier.core.errors import MatrixError, invalid_param, missing_param
from ranvier.storage.stores.pushers import PusherRow, PusherStore
from ranvier.util.clock import Clock

JsonDict = dict[str, Any]

HTTP_KIND = "http"
EMAIL_KIND = "email"
EMAIL_APP_ID = "m.email"
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_APP_ID_LENGTH = 64
MAX_PUSHKEY_BYTES = 512
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

PusherKey = tuple[str, str, str]


class PusherLifecycle(Protocol):
    def pusher_added(self, pusher: PusherRow) -> None: ...

    def pusher_removed(self, key: PusherKey) -> None: ...


@dataclass(frozen=True, slots=True)
class SetPusherRequest:
    kind: str | None
    app_id: str
    pushkey: str
    app_display_name: str | None = None
    device_display_name: str | None = None
    profile_tag: str | None = None
    lang: str | None = None
    data: JsonDict | None = None
    append: bool = False


def pusher_to_json(p: PusherRow) -> JsonDict:
    out: JsonDict = {
        "pushkey": p.pushkey,
        "kind": p.kind,
        "app_id": p.app_id,
        "app_display_name": p.app_display_name,
        "device_display_name": p.device_display_name,
        "lang": p.lang,
        "data": p.data,
    }
    if p.profile_tag is not None:
        out["profile_tag"] = p.profile_tag
    return out


def _check_http_data(data: JsonDict) -> None:
    url = data.get("url")
    if not isinstance(url, str):
        raise invalid_param("'url' is required in 'data' for http pushers.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise invalid_param("'url' is not a URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_param("'url' must be an http(s) URL.")
    if parts.path != NOTIFY_PATH:
        raise invalid_param(f"'url' must have the path {NOTIFY_PATH}.")


def _check_keys(req: SetPusherRequest) -> None:
    if not req.app_id or len(req.app_id) > MAX_APP_ID_LENGTH:
        raise invalid_param("'app_id' must be 1 to 64 characters.")
    if not req.pushkey or len(req.pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise invalid_param("'pushkey' must be 1 to 512 bytes.")


class PusherService:
    def __init__(
        self,
        store: PusherStore,
        clock: Clock,
        current_position: Callable[[], int],
        *,
        email_enabled: bool,
    ) -> None:
        self._store = store
        self._clock = clock
        self._position = current_position
        self._email_enabled = email_enabled
        self.lifecycle: PusherLifecycle | None = None

    async def get_pushers(self, user_id: str) -> list[JsonDict]:
        return [pusher_to_json(p) for p in await self._store.get_pushers(user_id)]

    async def set_pusher(
        self, user_id: str, device_id: str | None, req: SetPusherRequest
    ) -> None:
        _check_keys(req)
        if req.kind is None:
            key = (user_id, req.app_id, req.pushkey)
            if await self._store.delete_pusher(key):
                self._removed([key])
            return
        row = self._new_row(user_id, device_id, req)
        removed = await self._store.set_pusher(row, replace_others=not req.append)
        self._removed(removed)
        stored = await self._store.get_pusher(row.key)
        if stored is not None and self.lifecycle is not None:
            self.lifecycle.pusher_added(stored)

    def _new_row(
        self, user_id: str, device_id: str | None, req: SetPusherRequest
    ) -> PusherRow:
        missing = [
            name
            for name, value in (
                ("app_display_name", req.app_display_name),
                ("device_display_name", req.device_display_name),
                ("lang", req.lang),
                ("data", req.data),
            )
            if value is None
        ]
        if missing:
            raise missing_param("Missing parameters: " + ", ".join(missing))
        data = req.data or {}
        if req.kind == HTTP_KIND:
            _check_http_data(data)
        elif req.kind == EMAIL_KIND:
            self._check_email(req)
        else:
            raise invalid_param(f"Unknown pusher kind {req.kind!r}.")
        return PusherRow(
            user_id=user_id,
            app_id=req.app_id,
            pushkey=req.pushkey,
            kind=req.kind,
            device_id=device_id,
            app_display_name=req.app_display_name or "",
            device_display_name=req.device_display_name or "",
            profile_tag=req.profile_tag,
            lang=req.lang or "",
            data=data,
            pushkey_ts=self._clock.time_msec(),
            # A new pusher delivers what happens from now on, not the backlog.
            last_stream_ordering=self._position(),
        )

    def _check_email(self, req: SetPusherRequest) -> None:
        if req.app_id != EMAIL_APP_ID:
            raise invalid_param("E-mail pushers have the app_id 'm.email'.")
        if _EMAIL_RE.fullmatch(req.pushkey) is None:
            raise invalid_param("The pushkey of an e-mail pusher is an e-mail address.")
        if not self._email_enabled:
            raise MatrixError(
                400, "M_UNKNOWN", "This server does not send notification e-mail."
            )

    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        self._removed(
            await self._store.delete_pushers_of_devices(user_id, list(device_ids))
        )

    async def delete_pusher(self, key: PusherKey) -> None:
        """A push gateway rejected the pushkey (spec: `rejected`): stop using it."""
        if await self._store.delete_pusher(key):
            self._removed([key])

    def _removed(self, keys: Sequence[PusherKey]) -> None:
        if self.lifecycle is not None:
            for key in keys:
                self.lifecycle.pusher_removed(key)
