"""Room creation content and @room notifications through matrix-nio.

* `createRoom`'s `topic` is written as spec v1.15's `m.topic` object (MSC3765);
* the private presets let members invite (Synapse's `invite: 0`), public rooms keep 50;
* an "@room" from a client that sends no `m.mentions` still notifies (the legacy
  `.m.rule.roomnotif` default), and highlights.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nio import (
    AsyncClient,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)

from ranvier.storage.txn import EngineName
from tests.clients.test_rooms_nio import nio_client
from tests.helpers.accounts import Api, accounts_server


@asynccontextmanager
async def two(
    base_url: str, api: Api
) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    async with (
        nio_client(base_url, api, "alice") as alice,
        nio_client(base_url, api, "bob") as bob,
    ):
        yield alice, bob


async def _create(client: AsyncClient, **kw: object) -> str:
    resp = await client.room_create(**kw)
    assert isinstance(resp, RoomCreateResponse), resp
    return str(resp.room_id)


async def _state(client: AsyncClient, room_id: str, etype: str) -> dict[str, object]:
    resp = await client.room_get_state_event(room_id, etype)
    assert isinstance(resp, RoomGetStateEventResponse), resp
    return dict(resp.content)


async def test_topic_and_preset_power_levels(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with (
        accounts_server(tmp_path, engine=db_engine) as (hs, api),
        two(hs.base_url, api) as (alice, bob),
    ):
        private = await _create(alice, topic="Plans", invite=[bob.user_id])
        assert await _state(alice, private, "m.room.topic") == {
            "topic": "Plans",
            "m.topic": {"m.text": [{"body": "Plans", "mimetype": "text/plain"}]},
        }
        levels = await _state(alice, private, "m.room.power_levels")
        assert levels["invite"] == 0
        trusted = await _create(
            alice, preset=RoomPreset.trusted_private_chat, invite=[bob.user_id]
        )
        assert (await _state(alice, trusted, "m.room.power_levels"))["invite"] == 0
        public = await _create(
            alice,
            visibility=RoomVisibility.public,
            preset=RoomPreset.public_chat,
        )
        assert (await _state(alice, public, "m.room.power_levels"))["invite"] == 50
        # Bob, an ordinary member of the private chat, may invite.
        await bob.join(private)
        invited = await bob.room_invite(private, api.user_id("carol"))
        assert isinstance(invited, RoomInviteResponse), invited


async def test_at_room_without_mentions_notifies(tmp_path: Path) -> None:
    async with (
        accounts_server(tmp_path) as (hs, api),
        two(hs.base_url, api) as (
            alice,
            bob,
        ),
    ):
        room = await _create(alice, invite=[bob.user_id])
        await bob.join(room)
        first = await bob.sync(timeout=0)
        assert isinstance(first, SyncResponse), first
        sent = await alice.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": "@room lunch"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        # Intentional mentions (`m.mentions`) decide alone: no highlight here.
        sent = await alice.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "@room again", "m.mentions": {}},
        )
        assert isinstance(sent, RoomSendResponse), sent
        later = await bob.sync(timeout=0, since=first.next_batch)
        assert isinstance(later, SyncResponse), later
        counts = later.rooms.join[room].unread_notifications
        assert (counts.notification_count, counts.highlight_count) == (2, 1)
