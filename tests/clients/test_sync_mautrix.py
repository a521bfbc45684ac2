"""mautrix's sync loop (`Client.start`) against a real Ranvier: its event handlers get the
messages, typing notifications, receipts and to-device messages another mautrix client
produces; its filter, tag, account data and presence APIs round-trip, and its raw sync
calls chain tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.errors import MNotFound
from mautrix.types import (
    EventType,
    Filter,
    PresenceState,
    ReceiptType,
    RoomEventFilter,
    RoomFilter,
    RoomTagInfo,
    UserID,
)

from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

DEADLINE_SECONDS = 30
PING = EventType.find("org.example.ping", EventType.Class.TO_DEVICE)


@asynccontextmanager
async def mautrix_client(base_url: str, user: User) -> AsyncIterator[Client]:
    client = Client(
        mxid=user.user_id, device_id=user.device_id, base_url=base_url, token=user.token
    )
    try:
        yield client
    finally:
        client.stop()
        await client.api.session.close()


class Inbox:
    """Events a running mautrix client handed to its handlers, by type."""

    def __init__(self, client: Client, *types: EventType) -> None:
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        for t in types:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self._queues[str(t)] = queue

            async def handler(event: Any, queue: asyncio.Queue[Any] = queue) -> None:
                await queue.put(event)

            client.add_event_handler(t, handler)

    async def next(self, etype: EventType, predicate: Any = None) -> Any:
        async def wait() -> Any:
            while True:
                event = await self._queues[str(etype)].get()
                if predicate is None or predicate(event):
                    return event

        return await asyncio.wait_for(wait(), DEADLINE_SECONDS)


async def test_mautrix_sync_loop(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice_user = await new_user(api, "alice")
        bob_user = await new_user(api, "bob")
        async with (
            mautrix_client(hs.base_url, alice_user) as alice,
            mautrix_client(hs.base_url, bob_user) as bob,
        ):
            room_id = await alice.create_room(
                name="mautrix room", invitees=[bob_user.user_id]
            )
            await bob.join_room_by_id(room_id)

            filter_id = await bob.create_filter(
                Filter(room=RoomFilter(timeline=RoomEventFilter(limit=20)))
            )
            assert filter_id == "0"
            inbox = Inbox(
                bob,
                EventType.ROOM_MESSAGE,
                EventType.TYPING,
                EventType.RECEIPT,
                PING,
            )
            _loop = bob.start(filter_id)

            event_id = await alice.send_text(room_id, "hello mautrix")
            message = await inbox.next(
                EventType.ROOM_MESSAGE, lambda e: e.content.body == "hello mautrix"
            )
            assert message.event_id == event_id
            assert message.sender == alice_user.user_id

            await alice.set_typing(room_id, timeout=20_000)
            typing = await inbox.next(EventType.TYPING, lambda e: e.content.user_ids)
            assert typing.content.user_ids == [alice_user.user_id]

            await alice.send_receipt(room_id, event_id)
            receipt = await inbox.next(EventType.RECEIPT)
            assert alice_user.user_id in receipt.content[event_id][ReceiptType.READ]

            # (mautrix's loop does not dispatch room account data: read the tags back.)
            await bob.set_room_tag(room_id, "u.mautrix", RoomTagInfo(order=0.5))
            tags = await bob.get_room_tags(room_id)
            assert tags.tags["u.mautrix"].order == 0.5

            await alice.send_to_device(
                PING,
                {bob_user.user_id: {bob_user.device_id: {"n": 2}}},  # type: ignore[dict-item]
            )
            ping = await inbox.next(PING)
            assert ping.sender == alice_user.user_id

            cfg: dict[str, Any] = {"x": 1}
            await alice.set_account_data("org.example.cfg", cfg)
            assert await alice.get_account_data("org.example.cfg") == {"x": 1}
            with pytest.raises(MNotFound):
                await alice.get_account_data("org.example.missing")
            await alice.set_presence(PresenceState.UNAVAILABLE, "brb")
            presence = await bob.get_presence(UserID(alice_user.user_id))
            assert presence.presence == PresenceState.UNAVAILABLE
            assert presence.status_msg == "brb"

            # Stop bob's loop; wake its last long-poll so the server can stop promptly.
            bob.stop()
            await alice.send_to_device(
                PING,
                {bob_user.user_id: {bob_user.device_id: {"n": 3}}},  # type: ignore[dict-item]
            )

            # The raw sync call of the same client library: tokens chain.
            first = await alice.sync(timeout=0)
            assert room_id in first["rooms"]["join"]
            assert {"type": "org.example.cfg", "content": {"x": 1}} in first[
                "account_data"
            ]["events"]
            second = await alice.sync(since=first["next_batch"], timeout=0)
            assert second["rooms"]["join"] == {}
