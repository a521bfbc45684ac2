"""A Ranvier room under attack, and the checks that it survived.

`attacked_room` starts one Ranvier (`hs1.test`, SQLite or PostgreSQL) and a
`HostilePeer` (`evil.test`); alice creates a public room of the wanted version and
mallory (evil.test) joins it through make_join/send_join. After scripting a lie, a test
calls `assert_room_intact`, which checks every view of the room state:

* the database: current state is what the test expects, and no state group, state-at-
  event row or current-state row points at a rejected event (or a soft-failed one, for
  current state);
* what a local client sees: `/state`, `/state/m.room.power_levels`, an initial `/sync`
  and `/messages`;
* what other servers are served: `/state_ids`, `/state` and `/event_auth` at a fresh
  event alice sends (which also proves the room still takes writes).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ranvier.core.events.event import Event, StateKey
from ranvier.core.events.format import event_from_pdu
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.federation.client import federation_path
from ranvier.storage.txn import Txn
from tests.conftest import fresh_postgres_database, require_postgres
from tests.federation.fakes import in_process_network, transport_of
from tests.federation.hostile.peer import HostilePeer
from tests.helpers.accounts import Api
from tests.helpers.federation import FedServer, RemoteRoom
from tests.helpers.sync import User

JsonDict = dict[str, Any]
HS = "hs1.test"
EVIL = "evil.test"
MALLORY = "@mallory:evil.test"
PL_KEY: StateKey = ("m.room.power_levels", "")


@dataclass
class Attack:
    hs: FedServer
    peer: HostilePeer
    alice: User
    room_id: str
    room: RemoteRoom

    @property
    def rv(self) -> RoomVersion:
        return self.room.rv

    def q(self) -> str:
        return urllib.parse.quote(self.room_id)

    async def learn(self, event_id: str) -> Event:
        """Fetch an event Ranvier made (e.g. alice's ban) into the peer's mirror as
        its new tip, without waiting for Ranvier's federation sender."""
        event = await self.peer.fetch_event(self.hs, event_id, self.rv)
        return self.room.add(event)

    async def send_state(
        self, etype: str, content: JsonDict, state_key: str = ""
    ) -> Event:
        """alice sets room state; the peer learns the event."""
        path = f"/rooms/{self.q()}/state/{etype}/{urllib.parse.quote(state_key)}"
        sent = await self.alice.ok("PUT", path, content)
        return await self.learn(sent["event_id"])

    def nowhere(self) -> str:
        """An event ID nobody has, valid in the room version's format."""
        if self.rv.is_v1_event_format:
            return "$this:event.does.not.exist"
        return "$" + "A" * 43

    def gap(self, sender: str, state_ids: list[str], chain_ids: list[str]) -> Event:
        """Script the SyTest gap: E -> D -> C -> (nothing). Ranvier gets D from
        `/get_missing_events` and, for C, the peer's `/state_ids` answer
        (`state_ids`, `chain_ids`). Returns E, to be sent."""
        c = self.peer.forge(
            self.room, sender, "m.room.message", {"body": "c", "msgtype": "m.text"},
            prev=[self.nowhere()], depth=10,
        )  # fmt: skip
        d = self.peer.forge(
            self.room, sender, "m.room.message", {"body": "d", "msgtype": "m.text"},
            prev=[c.event_id], depth=11,
        )  # fmt: skip
        e = self.peer.forge(
            self.room, sender, "m.room.message", {"body": "e", "msgtype": "m.text"},
            prev=[d.event_id], depth=12,
        )  # fmt: skip
        self.peer.answer("get_missing_events", {"events": [d.data]})

        async def state_at_c(request: web.Request) -> JsonDict:
            assert request.query["event_id"] == c.event_id
            return {"pdu_ids": state_ids, "auth_chain_ids": chain_ids}

        self.peer.script("state_ids", state_at_c)
        return e

    async def send(self, pdus: list[Any]) -> JsonDict:
        """Push a transaction; return its per-PDU results."""
        status, out = await self.peer.send_transaction(self.hs, pdus)
        assert status == 200, out
        results: JsonDict = out["pdus"]
        return results


@asynccontextmanager
async def serve_peer(
    fed: Mapping[str, FedServer], peer: HostilePeer
) -> AsyncIterator[HostilePeer]:
    """Run `peer` on loopback, reachable from every Ranvier in `fed`."""
    async with AsyncExitStack() as stack:
        runner = web.AppRunner(peer.app(), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        for server in fed.values():
            transport_of(server.peer).register(peer.name, f"http://127.0.0.1:{port}")
        peer.session = await stack.enter_async_context(aiohttp.ClientSession())
        yield peer


@asynccontextmanager
async def running_server(tmp_path: Path, engine: str) -> AsyncIterator[FedServer]:
    """One Ranvier named `hs1.test` with open registration on `engine`."""
    async with AsyncExitStack() as stack:
        settings: JsonDict = {"registration": {"enabled": True, "require_token": False}}
        if engine == "postgres":
            dsn = stack.enter_context(fresh_postgres_database(require_postgres()))
            settings["database"] = {"engine": "postgres", "dsn": dsn}
        peers = await stack.enter_async_context(
            in_process_network(tmp_path, [HS], overrides={HS: settings})
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield FedServer(HS, peers[HS], Api(session, peers[HS].base_url, HS))


@asynccontextmanager
async def attacked_room(
    tmp_path: Path, *, room_version: str = "10", engine: str = "sqlite"
) -> AsyncIterator[Attack]:
    async with (
        running_server(tmp_path, engine) as hs,
        serve_peer({HS: hs}, HostilePeer(EVIL)) as peer,
    ):
        alice = await hs.user("alice")
        room_id = await alice.create_room(
            preset="public_chat", room_version=room_version
        )
        await alice.send(room_id, "before mallory")
        room, _ = await peer.join(hs, room_id, MALLORY)
        assert room.rv is KNOWN_ROOM_VERSIONS[room_version]
        yield Attack(hs, peer, alice, room_id, room)


# -- checks ------------------------------------------------------------------------------------
async def current_state(a: Attack) -> dict[StateKey, str]:
    def txn_fn(txn: Txn) -> dict[StateKey, str]:
        txn.execute(
            "SELECT type, state_key, event_id FROM current_state_events "
            "WHERE room_id = ?",
            (a.room_id,),
        )
        return {(str(t), str(k)): str(e) for t, k, e in txn.fetchall()}

    db = a.hs.peer.homeserver.db
    return await db.run_read_txn("test_current_state", txn_fn)


async def poisoned_state_rows(a: Attack) -> list[tuple[str, str]]:
    """(table, event ID) of every state row that points at a rejected event, or at a
    soft-failed one from current state. Must be empty, whatever a peer sent."""

    def txn_fn(txn: Txn) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        txn.execute(
            "SELECT s.event_id FROM state_group_entries AS s "
            "JOIN events AS e ON e.event_id = s.event_id "
            "WHERE e.rejected_reason IS NOT NULL"
        )
        out += [("state_group_entries", str(r[0])) for r in txn.fetchall()]
        txn.execute(
            "SELECT c.event_id FROM current_state_events AS c "
            "JOIN events AS e ON e.event_id = c.event_id "
            "WHERE e.rejected_reason IS NOT NULL OR e.soft_failed = TRUE"
        )
        out += [("current_state_events", str(r[0])) for r in txn.fetchall()]
        txn.execute(
            "SELECT g.event_id FROM event_state_groups AS g "
            "JOIN events AS e ON e.event_id = g.event_id "
            "WHERE e.rejected_reason IS NOT NULL AND "
            "g.state_group_before IS DISTINCT FROM g.state_group_after"
        )
        out += [("event_state_groups", str(r[0])) for r in txn.fetchall()]
        return out

    db = a.hs.peer.homeserver.db
    return await db.run_read_txn("test_poisoned_state", txn_fn)


async def rejected_ids(a: Attack) -> set[str]:
    def txn_fn(txn: Txn) -> set[str]:
        txn.execute(
            "SELECT event_id FROM events WHERE room_id = ? AND "
            "(rejected_reason IS NOT NULL OR soft_failed = TRUE)",
            (a.room_id,),
        )
        return {str(r[0]) for r in txn.fetchall()}

    db = a.hs.peer.homeserver.db
    return await db.run_read_txn("test_rejected_ids", txn_fn)


@dataclass(frozen=True)
class StoredStatus:
    outlier: bool
    rejected_reason: str | None
    soft_failed: bool


async def stored_status(a: Attack, event_id: str) -> StoredStatus | None:
    """How `event_id` is stored (None: not stored); an event has one row at most."""

    def txn_fn(txn: Txn) -> StoredStatus | None:
        txn.execute(
            "SELECT outlier, rejected_reason, soft_failed FROM events "
            "WHERE event_id = ?",
            (event_id,),
        )
        rows = txn.fetchall()
        assert len(rows) <= 1, rows
        if not rows:
            return None
        outlier, reason, soft = rows[0]
        return StoredStatus(bool(outlier), reason, bool(soft))

    db = a.hs.peer.homeserver.db
    return await db.run_read_txn("test_stored_status", txn_fn)


def _ids_in(value: Any) -> set[str]:
    """Every string in a JSON value (event IDs appear as strings)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_ids_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_ids_in(v) for v in value)) if value else set()
    return set()


async def _served(a: Attack, path: str) -> JsonDict:
    status, body = await a.peer.request(a.hs, "GET", path)
    assert status == 200, (path, status, body)
    assert isinstance(body, dict)
    return body


async def assert_room_intact(
    a: Attack,
    *,
    expected: Mapping[StateKey, str],
    forbidden: Collection[str] = (),
    powers: Mapping[str, int] | None = None,
    check_served: bool = True,
) -> None:
    """Every view of the room agrees with `expected` (a subset of the current state)
    and shows none of `forbidden` nor any rejected or soft-failed event."""
    bad = set(forbidden) | await rejected_ids(a)
    poisoned = await poisoned_state_rows(a)
    current = await current_state(a)
    assert {k: current.get(k) for k in expected} == dict(expected), current
    assert poisoned == [], poisoned
    assert not bad & set(current.values())
    # The room still takes writes, and the state before this probe is current state.
    probe = await a.alice.send(a.room_id, "probe after the attack")
    assert await current_state(a) == current
    await _assert_client_views(a, current, bad, powers or {a.alice.user_id: 100})
    if check_served:
        await _assert_served_views(a, probe, current, bad)


async def _assert_client_views(
    a: Attack,
    current: Mapping[StateKey, str],
    bad: set[str],
    powers: Mapping[str, int],
) -> None:
    state: list[JsonDict] = await a.alice.ok("GET", f"/rooms/{a.q()}/state")  # type: ignore[assignment]
    assert {(e["type"], e["state_key"]): e["event_id"] for e in state} == dict(current)
    pl = await a.alice.ok("GET", f"/rooms/{a.q()}/state/m.room.power_levels")
    for user, level in powers.items():
        if a.rv.privileged_creators and user == a.alice.user_id:
            # Since v12 the creator's power is not in the event: it is unbounded.
            assert user not in pl.get("users", {})
            continue
        assert pl.get("users", {}).get(user, pl.get("users_default", 0)) == level
    sync = await a.alice.sync()
    joined = sync["rooms"]["join"][a.room_id]
    seen = {e["event_id"] for e in joined["state"]["events"]}
    seen |= {e["event_id"] for e in joined["timeline"]["events"]}
    assert not seen & bad, seen & bad
    # The state section, then the timeline's state events, end at the current state.
    latest: dict[StateKey, str] = {}
    for e in joined["state"]["events"] + joined["timeline"]["events"]:
        if "state_key" in e:
            latest[(e["type"], e["state_key"])] = e["event_id"]
    assert {k: current.get(k) for k in latest} == latest
    messages = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=100")
    assert not {e["event_id"] for e in messages["chunk"]} & bad
    for event_id in sorted(bad):
        quoted = urllib.parse.quote(event_id)
        for path in (
            f"/rooms/{a.q()}/event/{quoted}",
            f"/rooms/{a.q()}/context/{quoted}",
        ):
            status, body = await a.alice.call("GET", path)
            assert status == 404, (path, status, body)


async def _assert_served_views(
    a: Attack, probe: str, current: Mapping[StateKey, str], bad: set[str]
) -> None:
    q = urllib.parse.urlencode({"event_id": probe})
    ids = await _served(
        a, federation_path("/_matrix/federation/v1/state_ids/{}", a.room_id) + "?" + q
    )
    assert set(ids["pdu_ids"]) == set(current.values())
    assert not set(ids["auth_chain_ids"]) & bad
    full = await _served(
        a, federation_path("/_matrix/federation/v1/state/{}", a.room_id) + "?" + q
    )
    assert {p_id(p, a.rv) for p in full["pdus"]} == set(current.values())
    assert not {p_id(p, a.rv) for p in full["auth_chain"]} & bad
    auth = await _served(
        a, federation_path("/_matrix/federation/v1/event_auth/{}/{}", a.room_id, probe)
    )
    assert not {p_id(p, a.rv) for p in auth["auth_chain"]} & bad
    for pdu in auth["auth_chain"]:
        assert not _ids_in(pdu.get("auth_events")) & bad


def p_id(pdu: JsonDict, rv: RoomVersion) -> str:
    return event_from_pdu(dict(pdu), rv).event_id
