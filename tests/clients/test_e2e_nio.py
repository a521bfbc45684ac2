"""matrix-nio with real end-to-end encryption (vodozemac Olm/Megolm) against Ranvier.

Each client uploads its device and one-time keys, learns the other devices through
`/keys/query` (and `device_lists.changed` in sync), claims one-time keys to open Olm
sessions, sends the Megolm room key to every device over `/sendToDevice`, and the
receiving client decrypts the `m.room.encrypted` timeline event. Nothing here is
mocked: if the server dropped, mangled or mis-served a key, decryption would fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.helpers.accounts import Api, accounts_server
from tests.helpers.federation import running_federation
from tests.helpers.sync import User, another_device, new_user

pytestmark = pytest.mark.skipif(
    not nio.crypto.ENCRYPTION_ENABLED, reason="matrix-nio without E2E support"
)

SYNC_TIMEOUT_MS = 2_000
DEADLINE_SECONDS = 60
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


@asynccontextmanager
async def e2e_client(
    base_url: str, user: User, store: Path
) -> AsyncIterator[nio.AsyncClient]:
    await asyncio.to_thread(store.mkdir, parents=True, exist_ok=True)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = nio.AsyncClient(
        base_url, user.user_id, user.device_id, store_path=str(store), config=config
    )
    client.restore_login(user.user_id, user.device_id, user.token)
    try:
        yield client
    finally:
        await client.close()


async def maintain_keys(client: nio.AsyncClient) -> None:
    """What nio's `sync_forever` does around each sync: keep keys in step."""
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
    if client.should_claim_keys:
        claimed = await client.keys_claim(client.get_users_for_key_claiming())
        assert isinstance(claimed, nio.KeysClaimResponse), claimed


async def sync_until(
    client: nio.AsyncClient, found: Callable[[nio.SyncResponse], Any]
) -> Any:
    async def loop() -> Any:
        while True:
            response = await client.sync(timeout=SYNC_TIMEOUT_MS)
            assert isinstance(response, nio.SyncResponse), response
            await maintain_keys(client)
            value = found(response)
            if value:
                return value

    return await asyncio.wait_for(loop(), DEADLINE_SECONDS)


def decrypted_texts(response: nio.SyncResponse, room_id: str) -> list[str]:
    room = response.rooms.join.get(room_id)
    if room is None:
        return []
    return [
        e.body
        for e in room.timeline.events
        if isinstance(e, nio.RoomMessageText) and e.decrypted
    ]


def decrypted_from(
    sender: str, room_id: str
) -> Callable[[nio.SyncResponse], list[str]]:
    """Bodies of decrypted messages `sender` sent (a client also decrypts its own)."""

    def found(response: nio.SyncResponse) -> list[str]:
        room = response.rooms.join.get(room_id)
        if room is None:
            return []
        return [
            e.body
            for e in room.timeline.events
            if isinstance(e, nio.RoomMessageText) and e.decrypted and e.sender == sender
        ]

    return found


async def encrypted_room(owner: nio.AsyncClient, invitees: list[str]) -> str:
    created = await owner.room_create(name="secret", initial_state=[ENCRYPTION])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id: str = created.room_id
    for user_id in invitees:  # one by one: createRoom only invites local users
        invited = await owner.room_invite(room_id, user_id)
        assert isinstance(invited, nio.RoomInviteResponse), invited
    await sync_until(owner, lambda r: room_id in r.rooms.join)
    assert owner.rooms[room_id].encrypted
    return room_id


async def send_encrypted(client: nio.AsyncClient, room_id: str, body: str) -> None:
    sent = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, nio.RoomSendResponse), sent


async def join_and_wait(client: nio.AsyncClient, room_id: str) -> None:
    await sync_until(client, lambda r: room_id in r.rooms.invite)
    assert isinstance(await client.join(room_id), nio.JoinResponse)
    await sync_until(client, lambda r: room_id in r.rooms.join)


async def users_with_keys(api: Api, tmp_path: Path) -> tuple[User, User]:
    return await new_user(api, "alice"), await new_user(api, "bob")


async def test_two_users_exchange_megolm_encrypted_message(tmp_path: Path) -> None:
    async with accounts_server(tmp_path / "hs") as (hs, api):
        alice_user, bob_user = await users_with_keys(api, tmp_path)
        async with (
            e2e_client(hs.base_url, alice_user, tmp_path / "alice") as alice,
            e2e_client(hs.base_url, bob_user, tmp_path / "bob") as bob,
        ):
            await maintain_keys(alice)
            await maintain_keys(bob)
            room_id = await encrypted_room(alice, [bob_user.user_id])
            await join_and_wait(bob, room_id)
            # Alice learns Bob joined (and, through device_lists, about his device).
            await sync_until(
                alice, lambda r: bob_user.user_id in alice.rooms[room_id].users
            )
            await maintain_keys(alice)
            assert bob_user.device_id in alice.device_store[bob_user.user_id]

            await send_encrypted(alice, room_id, "for bob's eyes only")
            texts = await sync_until(bob, lambda r: decrypted_texts(r, room_id))
            assert texts == ["for bob's eyes only"]

            # And back: Bob's own outbound session reaches Alice.
            await send_encrypted(bob, room_id, "got it")
            texts = await sync_until(alice, decrypted_from(bob_user.user_id, room_id))
            assert texts == ["got it"]


async def test_second_device_of_same_user_decrypts(tmp_path: Path) -> None:
    async with accounts_server(tmp_path / "hs") as (hs, api):
        alice_user, bob_user = await users_with_keys(api, tmp_path)
        alice_phone_user = await another_device(alice_user, "PHONE")
        async with (
            e2e_client(hs.base_url, alice_user, tmp_path / "alice") as alice,
            e2e_client(hs.base_url, alice_phone_user, tmp_path / "phone") as phone,
            e2e_client(hs.base_url, bob_user, tmp_path / "bob") as bob,
        ):
            for client in (alice, phone, bob):
                await maintain_keys(client)
            room_id = await encrypted_room(alice, [bob_user.user_id])
            await join_and_wait(bob, room_id)
            await sync_until(phone, lambda r: room_id in r.rooms.join)
            await sync_until(
                alice, lambda r: bob_user.user_id in alice.rooms[room_id].users
            )
            await maintain_keys(alice)
            assert "PHONE" in alice.device_store[alice_user.user_id]

            await send_encrypted(alice, room_id, "seen on every device")
            assert await sync_until(phone, lambda r: decrypted_texts(r, room_id)) == [
                "seen on every device"
            ]
            assert await sync_until(bob, lambda r: decrypted_texts(r, room_id)) == [
                "seen on every device"
            ]


async def test_encrypted_message_across_two_ranvier_servers(tmp_path: Path) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        alice_user = await fed["hs1.test"].user("alice")
        bob_user = await fed["hs2.test"].user("bob")
        async with (
            e2e_client(fed["hs1.test"].base_url, alice_user, tmp_path / "a") as alice,
            e2e_client(fed["hs2.test"].base_url, bob_user, tmp_path / "b") as bob,
        ):
            await maintain_keys(alice)
            await maintain_keys(bob)
            room_id = await encrypted_room(alice, [bob_user.user_id])
            await join_and_wait(bob, room_id)
            await sync_until(
                alice, lambda r: bob_user.user_id in alice.rooms[room_id].users
            )
            # Keys of a user on the other server: /keys/query and /keys/claim go
            # over federation (/user/devices, /user/keys/claim).
            await maintain_keys(alice)
            assert bob_user.device_id in alice.device_store[bob_user.user_id]

            await send_encrypted(alice, room_id, "across servers")
            texts = await sync_until(bob, lambda r: decrypted_texts(r, room_id))
            assert texts == ["across servers"]

            await send_encrypted(bob, room_id, "and back")
            texts = await sync_until(alice, decrypted_from(bob_user.user_id, room_id))
            assert texts == ["and back"]
