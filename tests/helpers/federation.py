"""Federation test harness: Ranvier servers in one process, and a scripted remote server.

    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        alice = await fed["hs1.test"].user("alice")
        async with fake_remote(fed, "remote.test") as remote:
            room = await remote.join(fed["hs1.test"], room_id, "@bob:remote.test")
            ev = room.build(remote, "@bob:remote.test", "m.room.message", {"body": "hi"})
            await remote.send_transaction(fed["hs1.test"], [ev])

`running_federation` starts real Ranvier instances (`in_process_network`: each with an
`InProcessTransport` routing the others' names to their loopback listeners).
`FakeRemote` is a tiny aiohttp server with its own signing key: it serves its key
document and the events of the rooms it mirrors (`/event`, `/state_ids`, `/state`,
`/event_auth`, `/get_missing_events`), records what it receives on `/send`, and sends
X-Matrix-signed requests as its server name. Tests build arbitrary (also malformed or
badly signed) events with `RemoteRoom`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from ranvier.core.auth import auth_events_selection
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.event import Event, StateKey
from ranvier.core.events.format import event_from_pdu
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.core.json import encode_canonical_json
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.federation.client import federation_path
from ranvier.federation.xmatrix import sign_request
from ranvier.services.server_keys import ServerKeys
from ranvier.util.clock import RealClock
from tests.federation.fakes import RunningPeer, in_process_network, transport_of
from tests.helpers.accounts import Api
from tests.helpers.sync import User, new_user

JsonDict = dict[str, Any]

_seeds = itertools.count(1)
_txns = itertools.count(1)


@dataclass
class FedServer:
    name: str
    peer: RunningPeer
    api: Api

    @property
    def base_url(self) -> str:
        return self.peer.base_url

    async def user(self, localpart: str) -> User:
        return await new_user(self.api, localpart)


@asynccontextmanager
async def running_federation(
    tmp_path: Path, names: list[str], *, allow_guests: bool = False
) -> AsyncIterator[dict[str, FedServer]]:
    registration = {"enabled": True, "require_token": False}
    if allow_guests:
        registration["allow_guests"] = True
    overrides = {name: {"registration": dict(registration)} for name in names}
    async with (
        in_process_network(tmp_path, names, overrides=overrides) as peers,
        aiohttp.ClientSession() as session,
    ):
        yield {
            name: FedServer(name, peer, Api(session, peer.base_url, name))
            for name, peer in peers.items()
        }


# -- a remote room, as the remote server sees it ---------------------------------------------
@dataclass
class RemoteRoom:
    room_id: str
    rv: RoomVersion
    events: dict[str, Event] = field(default_factory=dict)
    state: dict[StateKey, str] = field(default_factory=dict)
    extremities: list[str] = field(default_factory=list)
    # The state before each event the remote "has", for /state_ids.
    state_before: dict[str, dict[StateKey, str]] = field(default_factory=dict)

    def add(self, event: Event, *, advance: bool = True) -> Event:
        """Record `event` as known here; `advance`: it is the new tip."""
        self.events[event.event_id] = event
        self.state_before[event.event_id] = dict(self.state)
        if advance:
            if event.is_state():
                self.state[event.state_tuple] = event.event_id
            prevs = set(event.prev_event_ids)
            self.extremities = [e for e in self.extremities if e not in prevs]
            self.extremities.append(event.event_id)
        return event

    def build(
        self,
        remote: FakeRemote,
        sender: str,
        etype: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        prev: Iterable[str] | None = None,
        ts: int | None = None,
        record: bool = True,
    ) -> Event:
        """A signed event on the current tip (or `prev`), authorised by `self.state`."""
        prev_ids = list(prev) if prev is not None else list(self.extremities)
        fields: dict[str, Any] = {
            "event_type": etype,
            "sender": sender,
            "content": dict(content),
            "room_id": self.room_id,
            "origin_server_ts": ts if ts is not None else RealClock().time_msec(),
            "state_key": state_key,
            "v1_event_id": (
                f"${next(_seeds)}:{remote.name}" if self.rv.is_v1_event_format else None
            ),
        }
        draft = build_unsigned_pdu(self.rv, prev_events=[], auth_events=[], **fields)
        keys = auth_events_selection(Event(draft, "$draft", self.rv))
        auth = [self.events[self.state[k]] for k in sorted(keys) if k in self.state]
        pdu = build_unsigned_pdu(
            self.rv,
            prev_events=[self.events[p] for p in prev_ids],
            auth_events=auth,
            **fields,
        )
        event = finalize_local_event(pdu, self.rv, remote.name, remote.key)
        if record:
            self.add(event)
        return event


def event_of(pdu: JsonDict, rv: RoomVersion) -> Event:
    return event_from_pdu(dict(pdu), rv)


# -- the scripted remote server ---------------------------------------------------------------
class FakeRemote:
    def __init__(self, name: str, key: SigningKey | None = None) -> None:
        self.name = name
        self.key = key or SigningKey.from_seed(bytes([next(_seeds) % 256]) * 32, "fake")
        self._keys = ServerKeys(name, self.key, RealClock())
        self.rooms: dict[str, RemoteRoom] = {}
        self.received: list[JsonDict] = []
        self.requests: list[str] = []
        self.session: aiohttp.ClientSession | None = None

    # -- serving ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        p = "/_matrix/federation/v1"
        app.router.add_get("/_matrix/key/v2/server", self._keys_doc)
        app.router.add_put(p + "/send/{txn}", self._on_send)
        app.router.add_get(p + "/event/{event_id}", self._on_event)
        app.router.add_get(p + "/state_ids/{room_id}", self._on_state_ids)
        app.router.add_get(p + "/state/{room_id}", self._on_state)
        app.router.add_get(p + "/event_auth/{room_id}/{event_id}", self._on_auth)
        app.router.add_post(p + "/get_missing_events/{room_id}", self._on_missing)
        return app

    def _log(self, request: web.Request) -> None:
        self.requests.append(f"{request.method} {request.path}")

    def _find(self, event_id: str) -> Event | None:
        for room in self.rooms.values():
            if event_id in room.events:
                return room.events[event_id]
        return None

    async def _keys_doc(self, request: web.Request) -> web.Response:
        return web.json_response(self._keys.signed_key_response())

    async def _on_send(self, request: web.Request) -> web.Response:
        self._log(request)
        self.received.append(await request.json())
        return web.json_response({"pdus": {}})

    async def _on_event(self, request: web.Request) -> web.Response:
        self._log(request)
        event = self._find(request.match_info["event_id"])
        if event is None:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return web.json_response(
            {"origin": self.name, "origin_server_ts": 0, "pdus": [event.data]}
        )

    def _chain(self, room: RemoteRoom, ids: Iterable[str]) -> list[str]:
        seen: set[str] = set()
        todo = list(ids)
        while todo:
            ev = room.events.get(todo.pop())
            if ev is None:
                continue
            for a in ev.auth_event_ids:
                if a not in seen:
                    seen.add(a)
                    todo.append(a)
        return sorted(seen)

    async def _on_state_ids(self, request: web.Request) -> web.Response:
        self._log(request)
        room = self.rooms[request.match_info["room_id"]]
        before = room.state_before[request.query["event_id"]]
        ids = sorted(before.values())
        return web.json_response(
            {"pdu_ids": ids, "auth_chain_ids": self._chain(room, ids)}
        )

    async def _on_state(self, request: web.Request) -> web.Response:
        self._log(request)
        room = self.rooms[request.match_info["room_id"]]
        ids = sorted(room.state_before[request.query["event_id"]].values())
        return web.json_response(
            {
                "pdus": [room.events[e].data for e in ids],
                "auth_chain": [room.events[e].data for e in self._chain(room, ids)],
            }
        )

    async def _on_auth(self, request: web.Request) -> web.Response:
        self._log(request)
        room = self.rooms[request.match_info["room_id"]]
        chain = self._chain(room, [request.match_info["event_id"]])
        return web.json_response({"auth_chain": [room.events[e].data for e in chain]})

    async def _on_missing(self, request: web.Request) -> web.Response:
        self._log(request)
        room = self.rooms[request.match_info["room_id"]]
        body = await request.json()
        stop = set(body["earliest_events"]) | set(body["latest_events"])
        todo = [p for e in body["latest_events"] for p in room.events[e].prev_event_ids]
        found: list[Event] = []
        while todo and len(found) < body.get("limit", 10):
            eid = todo.pop(0)
            if eid in stop or eid not in room.events:
                continue
            stop.add(eid)
            found.append(room.events[eid])
            todo.extend(room.events[eid].prev_event_ids)
        found.sort(key=lambda e: e.depth)
        return web.json_response({"events": [e.data for e in found]})

    # -- requesting ----------------------------------------------------------------------------
    async def request(
        self,
        server: FedServer,
        method: str,
        path: str,
        content: Any | None = None,
        *,
        raw_body: bytes | None = None,
    ) -> tuple[int, Any]:
        """A signed request to a Ranvier (`raw_body` is sent unsigned-as-content)."""
        assert self.session is not None
        auth = sign_request(self.key, self.name, server.name, method, path, content)
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        body = raw_body
        if body is None and content is not None:
            body = encode_canonical_json(content)
        url = URL(server.base_url + path, encoded=True)
        async with self.session.request(
            method, url, data=body, headers=headers
        ) as resp:
            data = await resp.read()
            return resp.status, orjson.loads(data) if data else None

    async def send_transaction(
        self,
        server: FedServer,
        pdus: Iterable[Event | Any],
        edus: Iterable[Any] = (),
        *,
        txn_id: str | None = None,
    ) -> tuple[int, Any]:
        txn_id = txn_id or f"txn{next(_txns)}"
        body = {
            "origin": self.name,
            "origin_server_ts": RealClock().time_msec(),
            "pdus": [p.data if isinstance(p, Event) else p for p in pdus],
            "edus": list(edus),
        }
        path = federation_path("/_matrix/federation/v1/send/{}", txn_id)
        return await self.request(server, "PUT", path, body)

    async def join(
        self, server: FedServer, room_id: str, user_id: str
    ) -> tuple[RemoteRoom, JsonDict]:
        """make_join + v2 send_join as `user_id`; returns the mirrored room."""
        versions = "&".join(f"ver={v}" for v in KNOWN_ROOM_VERSIONS)
        path = federation_path(
            "/_matrix/federation/v1/make_join/{}/{}", room_id, user_id
        )
        status, made = await self.request(server, "GET", f"{path}?{versions}")
        assert status == 200, made
        rv = KNOWN_ROOM_VERSIONS[made["room_version"]]
        template = dict(made["event"])
        if rv.is_v1_event_format:
            template["event_id"] = f"${next(_seeds)}:{self.name}"
        join = finalize_local_event(template, rv, self.name, self.key)
        status, sent = await self.request(
            server,
            "PUT",
            federation_path(
                "/_matrix/federation/v2/send_join/{}/{}", room_id, join.event_id
            ),
            join.data,
        )
        assert status == 200, sent
        room = self.rooms.setdefault(room_id, RemoteRoom(room_id, rv))
        for pdu in [*sent["auth_chain"], *sent["state"]]:
            ev = event_of(pdu, rv)
            room.events[ev.event_id] = ev
        for pdu in sent["state"]:
            ev = event_of(pdu, rv)
            room.state[ev.state_tuple] = ev.event_id
        room.extremities = list(join.prev_event_ids)
        for prev in join.prev_event_ids:
            if prev not in room.events:
                room.events[prev] = await self.fetch_event(server, prev, rv)
        room.add(event_of(sent["event"], rv))
        return room, sent

    async def fetch_event(
        self, server: FedServer, event_id: str, rv: RoomVersion
    ) -> Event:
        path = federation_path("/_matrix/federation/v1/event/{}", event_id)
        status, body = await self.request(server, "GET", path)
        assert status == 200, body
        return event_of(body["pdus"][0], rv)


@asynccontextmanager
async def fake_remote(
    fed: Mapping[str, FedServer], name: str
) -> AsyncIterator[FakeRemote]:
    """Start a `FakeRemote` named `name`, reachable from every Ranvier in `fed`."""
    remote = FakeRemote(name)
    async with AsyncExitStack() as stack:
        runner = web.AppRunner(remote.app(), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        for server in fed.values():
            transport_of(server.peer).register(name, f"http://127.0.0.1:{port}")
        remote.session = await stack.enter_async_context(aiohttp.ClientSession())
        yield remote


@asynccontextmanager
async def acting_as(server: FedServer) -> AsyncIterator[FakeRemote]:
    """Hand-built requests signed as a running Ranvier (its own keys are served by it)."""
    hs = server.peer.homeserver
    remote = FakeRemote(server.name, hs.server_keys.signing_key)
    async with aiohttp.ClientSession() as session:
        remote.session = session
        yield remote
