"""mautrix-python's real `AppService` against a running Ranvier, on both engines: it
registers ghosts with `m.login.application_service`, acts as them with `user_id=`, gets
the room's events in transactions (with the right `hs_token`), keeps getting them after
it was down and after the homeserver restarted with transactions still queued; and the
refusals: unknown `as_token`, `user_id=` outside the namespace, `M_EXCLUSIVE`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import (
    Event,
    EventType,
    MessageEvent,
    ReceiptType,
    RoomCreatePreset,
    RoomID,
    UserID,
)

from tests.conftest import fresh_postgres_database, require_postgres
from tests.helpers.accounts import Api, accounts_server
from tests.helpers.sync import new_user

DEADLINE_SECONDS = 30
AS_TOKEN = "as-token-for-tests"
HS_TOKEN = "hs-token-for-tests"
GHOST = "@bridge_ghost:localhost"

# mautrix's AppService still hands aiohttp the deprecated `loop` argument.
pytestmark = pytest.mark.filterwarnings(
    "ignore:loop argument is deprecated:DeprecationWarning"
)

engines = pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's default state store writes `mx-state.json` into the working dir."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_registration(
    tmp_path: Path, port: int, *, rate_limited: bool = False
) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "id": "testbridge",
                "url": f"http://127.0.0.1:{port}",
                "as_token": AS_TOKEN,
                "hs_token": HS_TOKEN,
                "sender_localpart": "bridgebot",
                "rate_limited": rate_limited,
                "receive_ephemeral": True,
                "namespaces": {
                    "users": [{"exclusive": True, "regex": "@bridge_.*:localhost"}],
                    "aliases": [{"exclusive": True, "regex": "#bridge_.*:localhost"}],
                    "rooms": [],
                },
            }
        )
    )
    return path


class Bridge:
    """A mautrix AppService on `port` and the message events its transactions carried."""

    def __init__(self, base_url: str, port: int) -> None:
        self.port = port
        self.received: asyncio.Queue[MessageEvent] = asyncio.Queue()
        self.alias_queries: list[str] = []
        self.ephemeral: asyncio.Queue[Event] = asyncio.Queue()
        self.appservice = AppService(
            server=base_url,
            domain="localhost",
            as_token=AS_TOKEN,
            hs_token=HS_TOKEN,
            bot_localpart="bridgebot",
            id="testbridge",
            state_store=MemoryASStateStore(),
            # mautrix types QueryFunc as an aiohttp handler; it calls it with the alias.
            query_alias=self._query_alias,  # type: ignore[arg-type]
            query_user=self._query_user,  # type: ignore[arg-type]
            ephemeral_events=True,
        )
        self.appservice.matrix_event_handler(self._on_event)

    async def _on_event(self, event: Event) -> None:
        if event.type in (EventType.TYPING, EventType.RECEIPT):
            await self.ephemeral.put(event)
        elif event.type == EventType.ROOM_MESSAGE:
            assert isinstance(event, MessageEvent)
            await self.received.put(event)

    async def _query_user(self, user_id: str) -> dict[str, Any] | None:
        """Like a puppeting bridge: the ghost of a known remote user is created when
        someone first looks it up."""
        if user_id != "@bridge_remote:localhost":
            return None
        ghost = self.appservice.intent.user(UserID(user_id))
        await ghost.ensure_registered()
        await ghost.set_displayname("Remote Person")
        return {"created": user_id}

    async def _query_alias(self, alias: str) -> dict[str, Any] | None:
        """Like a bridge's portal rooms: the bot creates the room on first use."""
        self.alias_queries.append(alias)
        if not alias.startswith("#bridge_portal"):
            return None
        localpart = alias[1:].split(":")[0]
        await self.appservice.intent.create_room(
            alias_localpart=localpart, preset=RoomCreatePreset.PUBLIC, name="portal"
        )
        return {"created": alias}  # mautrix answers 404 for an empty result

    async def next_ephemeral(self, etype: EventType) -> Any:
        async def wait() -> Event:
            while True:
                event = await self.ephemeral.get()
                if event.type == etype:
                    return event

        return await asyncio.wait_for(wait(), DEADLINE_SECONDS)

    async def next_message(self, body: str) -> MessageEvent:
        async def wait() -> MessageEvent:
            while True:
                event = await self.received.get()
                if event.content.body == body:
                    return event

        return await asyncio.wait_for(wait(), DEADLINE_SECONDS)


@asynccontextmanager
async def running_bridge(base_url: str, port: int) -> AsyncIterator[Bridge]:
    bridge = Bridge(base_url, port)
    await bridge.appservice.start("127.0.0.1", port)
    try:
        yield bridge
    finally:
        await bridge.appservice.stop()


def overrides(registration: Path) -> dict[str, Any]:
    return {"app_service_config_files": [str(registration)]}


async def messages(api: Api, token: str, room_id: str) -> list[str]:
    status, body = await api.call(
        "GET", f"/rooms/{room_id}/messages?dir=b&limit=50", token=token
    )
    assert status == 200, body
    return [
        e["content"].get("body") for e in body["chunk"] if e["type"] == "m.room.message"
    ]


@engines
async def test_ghosts_talk_and_transactions_arrive(tmp_path: Path, engine: str) -> None:
    port = free_port()
    registration = write_registration(tmp_path, port)
    async with (
        accounts_server(tmp_path, engine=engine, overrides=overrides(registration)) as (
            hs,
            api,
        ),
        running_bridge(hs.base_url, port) as bridge,
    ):
        alice = await new_user(api, "alice")
        ghost = bridge.appservice.intent.user(UserID(GHOST))
        await ghost.ensure_registered()
        room_id = await ghost.create_room(
            name="bridged", invitees=[UserID(alice.user_id)]
        )
        status, body = await api.call(
            "POST", f"/join/{room_id}", token=alice.token, json={}
        )
        assert status == 200, body
        # Ghost → Matrix: a message sent through the intent (as_token + user_id=).
        await ghost.send_text(room_id, "hello from the bridge")
        assert "hello from the bridge" in await messages(api, alice.token, room_id)
        # Matrix → service: alice's message reaches the bridge in a transaction.
        status, body = await api.call(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/t1",
            token=alice.token,
            json={"msgtype": "m.text", "body": "hello from matrix"},
        )
        assert status == 200, body
        event = await bridge.next_message("hello from matrix")
        assert event.sender == alice.user_id
        assert event.room_id == room_id
        # Ephemeral events (receive_ephemeral): typing and receipts in the room.
        status, body = await api.call(
            "PUT",
            f"/rooms/{room_id}/typing/{alice.user_id}",
            token=alice.token,
            json={"typing": True, "timeout": 30000},
        )
        assert status == 200, body
        typing = await bridge.next_ephemeral(EventType.TYPING)
        assert typing.room_id == room_id
        assert typing.content.user_ids == [alice.user_id]
        status, body = await api.call(
            "POST",
            f"/rooms/{room_id}/receipt/m.read/{event.event_id}",
            token=alice.token,
            json={},
        )
        assert status == 200, body
        receipt = await bridge.next_ephemeral(EventType.RECEIPT)
        assert receipt.room_id == room_id
        assert alice.user_id in receipt.content[event.event_id][ReceiptType.READ]
        # Timestamp massaging: `ts=` sets origin_server_ts for the service only.
        path = f"/rooms/{room_id}/send/m.room.message/old?user_id={GHOST}&ts=1234567890"
        status, body = await api.call("PUT", path, token=AS_TOKEN, json={"body": "old"})
        assert status == 200, body
        status, fetched = await api.call(
            "GET", f"/rooms/{room_id}/event/{body['event_id']}", token=alice.token
        )
        assert (status, fetched["origin_server_ts"]) == (200, 1234567890)
        path = f"/rooms/{room_id}/send/m.room.message/mine?ts=1234567890"
        status, body = await api.call(
            "PUT", path, token=alice.token, json={"body": "x"}
        )
        assert status == 200, body
        status, fetched = await api.call(
            "GET", f"/rooms/{room_id}/event/{body['event_id']}", token=alice.token
        )
        assert fetched["origin_server_ts"] != 1234567890
        # The bot (sender_localpart) exists implicitly and can act without user_id=.
        status, body = await api.call("GET", "/account/whoami", token=AS_TOKEN)
        assert (status, body["user_id"]) == (200, "@bridgebot:localhost")
        status, body = await api.call(
            "POST",
            "/appservice/testbridge/ping",
            token=AS_TOKEN,
            json={},
            prefix="/_matrix/client/v1",
        )
        assert status == 200, body
        assert body["duration_ms"] >= 0
        # User queries: an unknown user in the namespace is asked of the bridge.
        status, body = await api.call(
            "GET", "/profile/@bridge_remote:localhost", token=alice.token
        )
        assert (status, body.get("displayname")) == (200, "Remote Person")
        status, body = await api.call(
            "GET", "/profile/@bridge_nobody:localhost", token=alice.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        # Alias queries: an unknown alias in the namespace is asked of the bridge,
        # which creates the portal room; the join then succeeds.
        status, body = await api.call(
            "POST", "/join/%23bridge_portal:localhost", token=alice.token, json={}
        )
        assert status == 200, body
        assert "#bridge_portal:localhost" in bridge.alias_queries
        status, body = await api.call(
            "GET", "/directory/room/%23bridge_nothing:localhost", token=alice.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        assert "#bridge_nothing:localhost" in bridge.alias_queries
        # Ordinary users may not take aliases in the exclusive namespace.
        status, body = await api.call(
            "PUT",
            "/directory/room/%23bridge_mine:localhost",
            token=alice.token,
            json={"room_id": room_id},
        )
        assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
        status, body = await api.call(
            "POST",
            "/createRoom",
            token=alice.token,
            json={"room_alias_name": "bridge_x"},
        )
        assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
        # The bridge's own users may.
        status, body = await api.call(
            "PUT",
            f"/directory/room/%23bridge_mine:localhost?user_id={GHOST}",
            token=AS_TOKEN,
            json={"room_id": room_id},
        )
        assert status == 200, body


async def test_refusals(tmp_path: Path) -> None:
    port = free_port()
    registration = write_registration(tmp_path, port)
    async with accounts_server(tmp_path, overrides=overrides(registration)) as (
        _hs,
        api,
    ):
        status, body = await api.call("GET", "/account/whoami", token="not-a-token")
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        status, body = await api.call(
            "GET", "/account/whoami?user_id=@alice:localhost", token=AS_TOKEN
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        # In the namespace but never registered.
        status, body = await api.call(
            "GET", f"/account/whoami?user_id={GHOST}", token=AS_TOKEN
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        # Ordinary users cannot take IDs in an exclusive namespace (nor the bot's).
        for name in ("bridge_someone", "bridgebot"):
            status, body = await api.call(
                "POST", "/register", json={"username": name, "password": "p4ssw0rd!x"}
            )
            assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
        # The service cannot register outside its namespace, nor with a wrong token.
        ghost_body = {"type": "m.login.application_service", "username": "alice"}
        status, body = await api.call(
            "POST", "/register", token=AS_TOKEN, json=ghost_body
        )
        assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
        ghost_body["username"] = "bridge_x"
        status, body = await api.call(
            "POST", "/register", token="wrong", json=ghost_body
        )
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # inhibit_login: the account, no access token.
        status, body = await api.call(
            "POST",
            "/register",
            token=AS_TOKEN,
            json={**ghost_body, "inhibit_login": True},
        )
        assert status == 200, body
        assert body["user_id"] == "@bridge_x:localhost"
        assert "access_token" not in body
        # The service logs its ghost in with the as_token; not users outside it.
        login = {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": "bridge_x"},
        }
        status, body = await api.call("POST", "/login", token=AS_TOKEN, json=login)
        assert status == 200, body
        assert body["user_id"] == "@bridge_x:localhost"
        status, body = await api.call(
            "GET", "/account/whoami", token=body["access_token"]
        )
        assert (status, body["user_id"]) == (200, "@bridge_x:localhost")
        await new_user(api, "alice")
        login["identifier"] = {"type": "m.id.user", "user": "alice"}
        status, body = await api.call("POST", "/login", token=AS_TOKEN, json=login)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await api.call("POST", "/login", json=login)
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        # Ping refuses another service's ID.
        status, body = await api.call(
            "POST",
            "/appservice/other/ping",
            token=AS_TOKEN,
            json={},
            prefix="/_matrix/client/v1",
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def _send(
    api: Api, token: str, room_id: RoomID | str, txn: str, text: str
) -> None:
    status, body = await api.call(
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/{txn}",
        token=token,
        json={"msgtype": "m.text", "body": text},
    )
    assert status == 200, body


@asynccontextmanager
async def database_overrides(engine: str) -> AsyncIterator[dict[str, Any]]:
    """One database for several server runs (the helper's own PostgreSQL database
    is dropped when its server stops)."""
    if engine == "sqlite":
        yield {}
        return
    with fresh_postgres_database(require_postgres()) as dsn:
        yield {"database": {"engine": "postgres", "dsn": dsn}}


@engines
async def test_queue_survives_service_downtime_and_restart(
    tmp_path: Path, engine: str
) -> None:
    port = free_port()
    registration = write_registration(tmp_path, port)
    data = tmp_path / "hs"
    data.mkdir()
    async with database_overrides(engine) as db:
        config = {**overrides(registration), **db}
        async with accounts_server(data, overrides=config) as (hs, api):
            alice = await new_user(api, "alice")
            async with running_bridge(hs.base_url, port) as bridge:
                ghost = bridge.appservice.intent.user(UserID(GHOST))
                await ghost.ensure_registered()
                room_id = await ghost.create_room(invitees=[UserID(alice.user_id)])
                status, body = await api.call(
                    "POST", f"/join/{room_id}", token=alice.token, json={}
                )
                assert status == 200, body
                await _send(api, alice.token, room_id, "a", "before downtime")
                await bridge.next_message("before downtime")
            # The service is down: sending still works, and is not held up by it.
            await _send(api, alice.token, room_id, "b", "while down")
            async with running_bridge(hs.base_url, port) as bridge:
                await bridge.next_message("while down")
            # A ping says the service is down.
            status, body = await api.call(
                "POST",
                "/appservice/testbridge/ping",
                token=AS_TOKEN,
                json={"transaction_id": "p1"},
                prefix="/_matrix/client/v1",
            )
            assert (status, body["errcode"]) == (502, "M_CONNECTION_FAILED")
            await _send(api, alice.token, room_id, "c", "queued over a restart")
            # Let the sender persist the event as a transaction it cannot deliver.
            await asyncio.sleep(0.5)
        # The homeserver restarts with the transaction queued; the service is back.
        async with (
            accounts_server(data, overrides=config) as (hs2, _api2),
            running_bridge(hs2.base_url, port) as bridge,
        ):
            await bridge.next_message("queued over a restart")


@pytest.mark.parametrize("rate_limited", [False, True])
async def test_rate_limit_exemption(tmp_path: Path, rate_limited: bool) -> None:
    """`rate_limited: false` exempts the service's requests from the message bucket."""
    registration = write_registration(tmp_path, free_port(), rate_limited=rate_limited)
    config = {
        **overrides(registration),
        "rate_limits": {"enabled": True, "message": {"per_second": 0.01, "burst": 2}},
    }
    async with accounts_server(tmp_path, overrides=config) as (_hs, api):
        status, body = await api.call(
            "POST", "/createRoom", token=AS_TOKEN, json={"preset": "public_chat"}
        )
        assert status == 200, body
        room_id = body["room_id"]
        statuses = []
        for i in range(5):
            status, body = await api.call(
                "PUT",
                f"/rooms/{room_id}/send/m.room.message/r{i}",
                token=AS_TOKEN,
                json={"msgtype": "m.text", "body": str(i)},
            )
            statuses.append(status)
        if rate_limited:
            assert 429 in statuses
        else:
            assert statuses == [200] * 5
