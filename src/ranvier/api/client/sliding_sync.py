"""Simplified sliding sync (MSC4186).

    POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync

Query parameters: `pos`, `timeout` (ms), `set_presence`; clients of the later MSC
revision send them in the body instead, which is accepted too (the query wins). The
body is the MSC4186 request (`conn_id`, `lists`, `room_subscriptions`,
`unsubscribe_rooms`, `extensions`; parsed in `core/sliding_sync.py`). Errors: an
unknown or expired `pos` is 400 `M_UNKNOWN_POS`; malformed input `M_BAD_JSON` /
`M_INVALID_PARAM`. Guests are refused (`M_GUEST_ACCESS_FORBIDDEN`): the guest rules of
`/sync` (peeking, guest-access rooms) are not carried over yet. A `txn_id` in the body is echoed, for clients that match responses to
requests with it.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import bad_json, invalid_param
from ranvier.core.sliding_sync import parse_request
from ranvier.services.presence import STATES
from ranvier.services.sync.sliding.service import SlidingSyncCall, SlidingSyncService

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


class SlidingSyncResource:
    def __init__(self, service: SlidingSyncService) -> None:
        self._service = service

    async def post_sync(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        body = (await req.json()).raw
        pos = req.query.get("pos") or _body_str(body, "pos")
        timeout = req.query_int("timeout", None, minimum=0)
        if timeout is None:
            raw_timeout = body.get("timeout")
            if raw_timeout is not None and (
                isinstance(raw_timeout, bool) or not isinstance(raw_timeout, int)
            ):
                raise bad_json("'timeout' must be an integer")
            timeout = max(0, raw_timeout or 0)
        set_presence = req.query.get("set_presence") or _body_str(body, "set_presence")
        if set_presence is not None and set_presence not in STATES:
            raise invalid_param(
                "'set_presence' must be online, offline or unavailable."
            )
        if user.device_id is None:
            raise invalid_param("Sliding sync needs an access token with a device.")
        result = await self._service.sync(
            SlidingSyncCall(
                user_id=user.user_id,
                device_id=user.device_id,
                request=parse_request(body),
                pos=pos,
                timeout_ms=timeout,
                set_presence=set_presence,
            )
        )
        txn_id = body.get("txn_id")
        if isinstance(txn_id, str):
            result["txn_id"] = txn_id
        return result

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("POST", (PATH,), self.post_sync, auth=AuthMode.USER)]


def _body_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_json(f"'{key}' must be a string")
    return value
