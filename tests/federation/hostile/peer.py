"""`HostilePeer`: a `FakeRemote` (tests/helpers/federation.py) whose answers are
scripted per endpoint.

By default it answers honestly from the rooms it mirrors (like `FakeRemote`, plus
`/backfill`). A test replaces any endpoint with `peer.script(name, handler)`: the
handler gets the aiohttp request and returns a JSON body (dict) or a full
`web.Response`. Endpoint names: "event", "state_ids", "state", "event_auth",
"get_missing_events", "backfill", "send". Every request is counted in `peer.hits`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.event import Event
from tests.federation.hostile.forge import forge
from tests.helpers.federation import FakeRemote, RemoteRoom

JsonDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[JsonDict | web.Response]]
_Route = Callable[[web.Request], Awaitable[web.StreamResponse]]

P = "/_matrix/federation/v1"


class HostilePeer(FakeRemote):
    def __init__(self, name: str, key: SigningKey | None = None) -> None:
        super().__init__(name, key)
        self._scripts: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()

    def script(self, endpoint: str, handler: Handler) -> None:
        self._scripts[endpoint] = handler

    def unscript(self, endpoint: str) -> None:
        self._scripts.pop(endpoint, None)

    def answer(self, endpoint: str, body: JsonDict) -> None:
        """Always answer `endpoint` with `body`."""

        async def fixed(_: web.Request) -> JsonDict:
            return body

        self.script(endpoint, fixed)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_matrix/key/v2/server", self._keys_doc)
        routes: list[tuple[str, str, str, _Route]] = [
            ("PUT", P + "/send/{txn}", "send", self._on_send),
            ("GET", P + "/event/{event_id}", "event", self._on_event),
            ("GET", P + "/state_ids/{room_id}", "state_ids", self._on_state_ids),
            ("GET", P + "/state/{room_id}", "state", self._on_state),
            ("GET", P + "/event_auth/{room_id}/{event_id}", "event_auth",
             self._on_auth),
            ("POST", P + "/get_missing_events/{room_id}", "get_missing_events",
             self._on_missing),
            ("GET", P + "/backfill/{room_id}", "backfill", self._on_backfill),
        ]  # fmt: skip
        for method, path, name, default in routes:
            app.router.add_route(method, path, self._dispatch(name, default))
        return app

    def _dispatch(self, name: str, default: _Route) -> _Route:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.hits[name] += 1
            handler = self._scripts.get(name)
            if handler is None:
                return await default(request)
            self._log(request)
            out = await handler(request)
            return out if isinstance(out, web.Response) else web.json_response(out)

        return handle

    async def _on_backfill(self, request: web.Request) -> web.Response:
        self._log(request)
        room = self.rooms[request.match_info["room_id"]]
        limit = int(request.query.get("limit", "10"))
        todo = list(request.query.getall("v", []))
        seen: set[str] = set()
        found: list[Event] = []
        while todo and len(found) < limit:
            eid = todo.pop(0)
            if eid in seen or eid not in room.events:
                continue
            seen.add(eid)
            found.append(room.events[eid])
            todo.extend(room.events[eid].prev_event_ids)
        return web.json_response(
            {"origin": self.name, "origin_server_ts": 0,
             "pdus": [e.data for e in found]}
        )  # fmt: skip

    # -- forging in a mirrored room -------------------------------------------------------
    def forge(
        self,
        room: RemoteRoom,
        sender: str,
        etype: str,
        content: JsonDict,
        *,
        state_key: str | None = None,
        prev: list[str] | None = None,
        auth: list[str] | None = None,
        depth: int | None = None,
        ts: int | None = None,
        remember: bool = True,
    ) -> Event:
        """An event of `room` with any fields; unset ones default to the honest ones
        (the room's tip, the auth events its state selects, depth past the tip).
        `remember`: serve it from `/event` and the default endpoints."""
        honest = room.build(
            self, sender, etype, content, state_key=state_key, record=False
        )
        event = forge(
            room.rv,
            server=self.name,
            key=self.key,
            room_id=room.room_id,
            sender=sender,
            etype=etype,
            content=content,
            state_key=state_key,
            prev=prev if prev is not None else list(honest.prev_event_ids),
            auth=auth if auth is not None else list(honest.auth_event_ids),
            depth=depth if depth is not None else honest.depth,
            ts=ts if ts is not None else honest.origin_server_ts,
            events=room.events,
        )
        if remember:
            room.events[event.event_id] = event
        return event
