"""Gaps SyTest found, driven through real client libraries on both engines:

* matrix-nio: `get_presence` of a new user is `offline` (not 404); an incremental sync
  after a join carries the new company's presence, on both sides of the join;
* mautrix: a sync filter with `event_format: federation` gives PDUs (with `event_id`);
  the deprecated r0 API (`/events`, `/events/{eventId}`, `/initialSync`, room
  `/initialSync` with presence, account data and receipts) through mautrix's HTTP API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio
from mautrix.api import Method
from mautrix.api import Path as MPath
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID

from ranvier.storage.txn import EngineName
from tests.clients.test_sync_nio import nio_client
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

DEADLINE_SECONDS = 30
G_DATA: dict[str, Any] = {"g": 1}
R_DATA: dict[str, Any] = {"r": 1}


@asynccontextmanager
async def mautrix_client(base_url: str, user: User) -> AsyncIterator[Client]:
    client = Client(
        mxid=UserID(user.user_id),
        device_id=user.device_id,
        base_url=base_url,
        token=user.token,
    )
    try:
        yield client
    finally:
        await client.api.session.close()


async def test_nio_presence_offline_and_presence_after_join(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice_user = await new_user(api, "alice")
        bob_user = await new_user(api, "bob")
        async with (
            nio_client(hs.base_url, alice_user) as alice,
            nio_client(hs.base_url, bob_user) as bob,
        ):
            # A user who never synced nor set presence is offline, not 404.
            own = await bob.get_presence(bob_user.user_id)
            assert isinstance(own, nio.PresenceGetResponse), own
            assert own.presence == "offline"

            created = await alice.room_create(
                name="presence room", preset=nio.RoomPreset.public_chat
            )
            assert isinstance(created, nio.RoomCreateResponse), created
            room_id = created.room_id
            assert isinstance(await alice.sync(timeout=0), nio.SyncResponse)
            sent = await alice.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": "settle"}
            )
            assert isinstance(sent, nio.RoomSendResponse), sent
            assert isinstance(await alice.sync(timeout=0), nio.SyncResponse)
            assert isinstance(await bob.sync(timeout=0), nio.SyncResponse)

            assert isinstance(await bob.join(room_id), nio.JoinResponse)

            # Bob's next sync has Alice's presence, though it did not change...
            def others(response: nio.SyncResponse, me: str) -> list[Any]:
                return [p for p in response.presence_events if p.user_id != me]

            after = await bob.sync(timeout=0)
            assert isinstance(after, nio.SyncResponse), after
            assert room_id in after.rooms.join
            assert [p.user_id for p in others(after, bob_user.user_id)] == [
                alice_user.user_id
            ]
            # ...and only once.
            again = await bob.sync(timeout=0)
            assert isinstance(again, nio.SyncResponse)
            assert others(again, bob_user.user_id) == []

            # Alice's next sync has Bob's.
            seen = await alice.sync(timeout=0)
            assert isinstance(seen, nio.SyncResponse), seen
            assert [p.user_id for p in others(seen, alice_user.user_id)] == [
                bob_user.user_id
            ]


async def test_mautrix_federation_format_filter(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice_user = await new_user(api, "alice")
        async with mautrix_client(hs.base_url, alice_user) as alice:
            room_id = await alice.create_room(name="pdus")
            event_id = await alice.send_text(room_id, "as a PDU")
            filter_id = await alice.api.request(
                Method.POST,
                MPath.v3.user[alice_user.user_id].filter,
                {"event_format": "federation", "room": {"timeline": {"limit": 1}}},
            )
            sync = await alice.sync(filter_id=filter_id["filter_id"])
            room = sync["rooms"]["join"][room_id]
            [event] = room["timeline"]["events"]
            assert event["event_id"] == event_id
            assert event["room_id"] == room_id
            assert event["content"]["body"] == "as a PDU"
            for key in ("prev_events", "auth_events", "depth", "hashes", "signatures"):
                assert key in event, key
            assert all("hashes" in e for e in room["state"]["events"])


async def test_mautrix_legacy_sync_api(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice_user = await new_user(api, "alice")
        bob_user = await new_user(api, "bob")
        async with (
            mautrix_client(hs.base_url, alice_user) as alice,
            mautrix_client(hs.base_url, bob_user) as bob,
        ):
            room_id = await alice.create_room(name="old sync", invitees=[bob.mxid])
            await bob.join_room(room_id)
            await alice.set_account_data(
                EventType.find("org.example.g", EventType.Class.ACCOUNT_DATA), G_DATA
            )
            await alice.set_account_data(
                EventType.find("org.example.r", EventType.Class.ACCOUNT_DATA),
                R_DATA,
                RoomID(room_id),
            )
            first = await alice.send_text(room_id, "before the stream")
            await alice.send_receipt(room_id, first)

            # GET /initialSync: rooms, presence (own, with the legacy user_id),
            # receipts and global account data; `end` starts an event stream.
            initial = await alice.api.request(
                Method.GET, MPath.v3.initialSync, query_params={"limit": "5"}
            )
            [room] = [r for r in initial["rooms"] if r["room_id"] == room_id]
            assert room["membership"] == "join"
            assert room["visibility"] == "private"
            assert room["messages"]["chunk"][-1]["event_id"] == first
            assert len(room["messages"]["chunk"]) <= 5
            assert {"type": "org.example.r", "content": {"r": 1}} in room[
                "account_data"
            ]
            assert {"type": "org.example.g", "content": {"g": 1}} in initial[
                "account_data"
            ]
            presence = {p["content"]["user_id"] for p in initial["presence"]}
            assert {alice_user.user_id, bob_user.user_id} <= presence
            [receipt] = [r for r in initial["receipts"] if r["room_id"] == room_id]
            assert alice_user.user_id in receipt["content"][first]["m.read"]

            # GET /events from that token: the new message, with its room_id.
            waiter = asyncio.create_task(
                alice.api.request(
                    Method.GET,
                    MPath.v3.events,
                    query_params={"from": initial["end"], "timeout": "20000"},
                )
            )
            second = await bob.send_text(room_id, "in the stream")
            stream = await asyncio.wait_for(waiter, DEADLINE_SECONDS)
            assert stream["start"] == initial["end"]
            messages = [e for e in stream["chunk"] if e.get("event_id") == second]
            assert [m["room_id"] for m in messages] == [room_id]
            # Nothing new: an empty chunk, the same position.
            idle = await alice.api.request(
                Method.GET,
                MPath.v3.events,
                query_params={"from": stream["end"], "timeout": "0"},
            )
            assert [e for e in idle["chunk"] if e.get("type") == "m.room.message"] == []

            # GET /events/{eventId}
            one = await alice.api.request(Method.GET, MPath.v3.events[second])
            assert (one["event_id"], one["room_id"]) == (second, room_id)

            # GET /rooms/{roomId}/initialSync: presence of the members, account data.
            room_sync = await alice.api.request(
                Method.GET,
                MPath.v3.rooms[RoomID(room_id)].initialSync,
                query_params={"limit": "0"},
            )
            assert room_sync["messages"]["chunk"] == []
            members = {p["content"]["user_id"] for p in room_sync["presence"]}
            assert members == {alice_user.user_id, bob_user.user_id}
            assert all("status_msg" in p["content"] for p in room_sync["presence"])
            assert {"type": "org.example.r", "content": {"r": 1}} in room_sync[
                "account_data"
            ]


async def test_mautrix_summary_heroes_only_for_unnamed_rooms(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice_user = await new_user(api, "alice")
        bob_user = await new_user(api, "bob")
        async with (
            mautrix_client(hs.base_url, alice_user) as alice,
            mautrix_client(hs.base_url, bob_user) as bob,
        ):
            named = await alice.create_room(name="named", invitees=[bob.mxid])
            unnamed = await alice.create_room(invitees=[bob.mxid])
            await bob.join_room(named)
            await bob.join_room(unnamed)
            rooms = (await alice.sync())["rooms"]["join"]
            assert rooms[named]["summary"] == {
                "m.joined_member_count": 2,
                "m.invited_member_count": 0,
            }
            assert rooms[unnamed]["summary"]["m.heroes"] == [bob_user.user_id]


async def test_event_of_unreadable_room_is_404_and_peeking_event_stream(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice_user = await new_user(api, "alice")
        eve_user = await new_user(api, "eve")
        async with (
            nio_client(hs.base_url, alice_user) as alice,
            nio_client(hs.base_url, eve_user) as eve,
            mautrix_client(hs.base_url, eve_user) as eve_mautrix,
        ):
            created = await alice.room_create(name="private")
            assert isinstance(created, nio.RoomCreateResponse), created
            room_id = created.room_id
            sent = await alice.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": "secret"}
            )
            assert isinstance(sent, nio.RoomSendResponse), sent
            # Spec: 404 "not found or you do not have permission to read this event".
            got = await eve.room_get_event(room_id, sent.event_id)
            assert isinstance(got, nio.RoomGetEventError), got
            assert got.status_code == "M_NOT_FOUND"

            # A world-readable room: Eve's event stream peeks at its events and the
            # receipts in it.
            visibility = await alice.room_put_state(
                room_id,
                "m.room.history_visibility",
                {"history_visibility": "world_readable"},
            )
            assert isinstance(visibility, nio.RoomPutStateResponse), visibility
            start = await eve_mautrix.api.request(
                Method.GET,
                MPath.v3.events,
                query_params={"room_id": room_id, "timeout": "0"},
            )
            waiter = asyncio.create_task(
                eve_mautrix.api.request(
                    Method.GET,
                    MPath.v3.events,
                    query_params={
                        "room_id": room_id,
                        "from": start["end"],
                        "timeout": "20000",
                    },
                )
            )
            shout = await alice.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": "public"}
            )
            assert isinstance(shout, nio.RoomSendResponse), shout
            peeked = await asyncio.wait_for(waiter, DEADLINE_SECONDS)
            assert [e["content"]["body"] for e in peeked["chunk"]] == ["public"]
            assert isinstance(
                await alice.room_read_markers(room_id, shout.event_id, shout.event_id),
                nio.RoomReadMarkersResponse,
            )
            receipts = await eve_mautrix.api.request(
                Method.GET,
                MPath.v3.events,
                query_params={
                    "room_id": room_id,
                    "from": peeked["end"],
                    "timeout": "20000",
                },
            )
            assert [e["type"] for e in receipts["chunk"]] == ["m.receipt"]
            assert (
                alice_user.user_id
                in (receipts["chunk"][0]["content"][shout.event_id]["m.read"])
            )
