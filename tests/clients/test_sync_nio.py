"""matrix-nio's sync loop against a real Ranvier: messages, typing, receipts, read
markers, presence, account data and to-device reach the other client through
`AsyncClient.sync()`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio

from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

SYNC_TIMEOUT_MS = 10_000
DEADLINE_SECONDS = 30


@asynccontextmanager
async def nio_client(base_url: str, user: User) -> AsyncIterator[nio.AsyncClient]:
    client = nio.AsyncClient(base_url, user.user_id)
    client.restore_login(user.user_id, user.device_id, user.token)
    try:
        yield client
    finally:
        await client.close()


async def sync_until(
    client: nio.AsyncClient, found: Callable[[nio.SyncResponse], Any]
) -> Any:
    """Run nio's own sync loop (long-polling from its `next_batch`) until `found`."""

    async def loop() -> Any:
        while True:
            response = await client.sync(timeout=SYNC_TIMEOUT_MS)
            assert isinstance(response, nio.SyncResponse), response
            value = found(response)
            if value:
                return value

    return await asyncio.wait_for(loop(), DEADLINE_SECONDS)


def joined_events(response: nio.SyncResponse, room_id: str, kind: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    if room is None:
        return []
    source = {
        "timeline": room.timeline.events,
        "ephemeral": room.ephemeral,
        "account_data": room.account_data,
    }[kind]
    return list(source)


async def test_nio_sync_loop_receives_everything(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice_user = await new_user(api, "alice")
        bob_user = await new_user(api, "bob")
        async with (
            nio_client(hs.base_url, alice_user) as alice,
            nio_client(hs.base_url, bob_user) as bob,
        ):
            created = await alice.room_create(
                name="nio room", invite=[bob_user.user_id]
            )
            assert isinstance(created, nio.RoomCreateResponse), created
            room_id = created.room_id

            # Bob sees the invite, joins, and both clients hold a sync token.
            await sync_until(bob, lambda r: room_id in r.rooms.invite)
            assert bob.invited_rooms[room_id].name == "nio room"
            assert isinstance(await bob.join(room_id), nio.JoinResponse)
            await sync_until(bob, lambda r: room_id in r.rooms.join)
            await sync_until(
                alice,
                lambda r: bob_user.user_id in alice.rooms[room_id].users,
            )

            sent = await alice.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": "hello nio"}
            )
            assert isinstance(sent, nio.RoomSendResponse), sent
            message = await sync_until(
                bob,
                lambda r: [
                    e
                    for e in joined_events(r, room_id, "timeline")
                    if isinstance(e, nio.RoomMessageText)
                ],
            )
            assert message[0].body == "hello nio"
            assert message[0].sender == alice_user.user_id

            assert isinstance(
                await alice.room_typing(room_id, True, 20_000), nio.RoomTypingResponse
            )
            typing = await sync_until(
                bob,
                lambda r: [
                    e
                    for e in joined_events(r, room_id, "ephemeral")
                    if isinstance(e, nio.TypingNoticeEvent) and e.users
                ],
            )
            assert typing[0].users == [alice_user.user_id]

            receipt = await bob.update_receipt_marker(room_id, sent.event_id)
            assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
            receipts = await sync_until(
                alice,
                lambda r: [
                    rc
                    for e in joined_events(r, room_id, "ephemeral")
                    if isinstance(e, nio.ReceiptEvent)
                    for rc in e.receipts
                    if rc.user_id == bob_user.user_id
                ],
            )
            assert receipts[0].event_id == sent.event_id

            markers = await bob.room_read_markers(room_id, sent.event_id, sent.event_id)
            assert isinstance(markers, nio.RoomReadMarkersResponse), markers
            fully_read = await sync_until(
                bob,
                lambda r: [
                    e
                    for e in joined_events(r, room_id, "account_data")
                    if isinstance(e, nio.FullyReadEvent)
                ],
            )
            assert fully_read[0].event_id == sent.event_id

            status, _ = await api.call(
                "PUT",
                f"/user/{bob_user.user_id}/rooms/{room_id}/tags/u.nio",
                token=bob_user.token,
                json={"order": 0.25},
            )
            assert status == 200
            tags = await sync_until(
                bob,
                lambda r: [
                    e
                    for e in joined_events(r, room_id, "account_data")
                    if isinstance(e, nio.TagEvent)
                ],
            )
            assert tags[0].tags == {"u.nio": {"order": 0.25}}

            assert isinstance(
                await alice.set_presence("unavailable", "away from keyboard"),
                nio.PresenceSetResponse,
            )
            presence = await sync_until(
                bob,
                lambda r: [
                    e
                    for e in r.presence_events
                    if isinstance(e, nio.PresenceEvent)
                    and e.user_id == alice_user.user_id
                    and e.presence == "unavailable"
                ],
            )
            assert presence[0].status_msg == "away from keyboard"

            to_device = nio.ToDeviceMessage(
                "org.example.ping", bob_user.user_id, bob_user.device_id, {"n": 1}
            )
            assert isinstance(await alice.to_device(to_device), nio.ToDeviceResponse)
            delivered = await sync_until(bob, lambda r: list(r.to_device_events))
            assert isinstance(delivered[0], nio.UnknownToDeviceEvent)
            assert delivered[0].source["content"] == {"n": 1}
            assert delivered[0].sender == alice_user.user_id
