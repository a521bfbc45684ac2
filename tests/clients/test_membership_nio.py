"""Membership and account gaps found by SyTest and real clients, through matrix-nio
against one Ranvier (on SQLite and on PostgreSQL): rejecting an invite to a room
nobody is left in, guests removed when guest access ends, erased users' messages,
ignored users, device-list changes and the user directory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.helpers.accounts import PASSWORD, Api, accounts_server
from tests.helpers.homeserver import TestHomeserver as Homeserver

DEADLINE_SECONDS = 20


@pytest.fixture(params=["sqlite", "postgres"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Homeserver, Api]]:
    overrides = {"registration": {"allow_guests": True}}
    async with accounts_server(tmp_path, engine=request.param, overrides=overrides) as (
        hs,
        api,
    ):
        yield hs, api


@asynccontextmanager
async def nio_user(
    hs: Homeserver, api: Api, localpart: str
) -> AsyncIterator[nio.AsyncClient]:
    await api.register(localpart)
    client = nio.AsyncClient(hs.base_url, f"@{localpart}:{hs.server_name}")
    try:
        login = await client.login(PASSWORD)
        assert isinstance(login, nio.LoginResponse), login
        yield client
    finally:
        await client.close()


async def sync_until(
    client: nio.AsyncClient, found: Callable[[nio.SyncResponse], Any]
) -> Any:
    async def loop() -> Any:
        while True:
            response = await client.sync(timeout=300)
            assert isinstance(response, nio.SyncResponse), response
            value = found(response)
            if value:
                return value

    return await asyncio.wait_for(loop(), DEADLINE_SECONDS)


def member_events(
    response: nio.SyncResponse, section: str, room_id: str, user_id: str
) -> list[nio.RoomMemberEvent]:
    room = getattr(response.rooms, section).get(room_id)
    if room is None:
        return []
    return [
        e
        for e in room.timeline.events
        if isinstance(e, nio.RoomMemberEvent) and e.state_key == user_id
    ]


async def test_rejecting_an_invite_to_a_room_nobody_is_left_in(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with nio_user(hs, api, "alice") as alice, nio_user(hs, api, "bob") as bob:
        created = await alice.room_create(
            preset=nio.RoomPreset.private_chat, invite=[bob.user_id]
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await sync_until(bob, lambda r: room_id in r.rooms.invite)
        assert isinstance(await alice.room_leave(room_id), nio.RoomLeaveResponse)
        # Nobody on this server is joined any more, yet the room is ours: the
        # rejection is a local event, not a federation round trip ("no known servers").
        left = await bob.room_leave(room_id)
        assert isinstance(left, nio.RoomLeaveResponse), left
        [event] = await sync_until(
            bob, lambda r: member_events(r, "leave", room_id, bob.user_id)
        )
        assert event.membership == "leave"
        assert event.prev_membership == "invite"
        # Leaving again is a no-op, forgetting works.
        assert isinstance(await bob.room_leave(room_id), nio.RoomLeaveResponse)
        assert isinstance(await bob.room_forget(room_id), nio.RoomForgetResponse)


@asynccontextmanager
async def nio_guest(hs: Homeserver, api: Api) -> AsyncIterator[nio.AsyncClient]:
    status, body = await api.call("POST", "/register?kind=guest", json={})
    assert status == 200, body
    client = nio.AsyncClient(hs.base_url, body["user_id"], body["device_id"])
    client.restore_login(body["user_id"], body["device_id"], body["access_token"])
    try:
        yield client
    finally:
        await client.close()


async def test_guests_leave_when_guest_access_ends(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with nio_user(hs, api, "alice") as alice, nio_guest(hs, api) as guest:
        created = await alice.room_create(
            visibility=nio.RoomVisibility.public,
            initial_state=[
                {
                    "type": "m.room.guest_access",
                    "state_key": "",
                    "content": {"guest_access": "can_join"},
                }
            ],
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await guest.join(room_id), nio.JoinResponse)
        await sync_until(guest, lambda r: room_id in r.rooms.join)
        changed = await alice.room_put_state(
            room_id, "m.room.guest_access", {"guest_access": "forbidden"}
        )
        assert isinstance(changed, nio.RoomPutStateResponse), changed
        [event] = await sync_until(
            guest, lambda r: member_events(r, "leave", room_id, guest.user_id)
        )
        assert event.membership == "leave"
        assert event.sender == guest.user_id
        members = await alice.joined_members(room_id)
        assert isinstance(members, nio.JoinedMembersResponse), members
        assert {m.user_id for m in members.members} == {alice.user_id}
        refused = await guest.join(room_id)
        assert isinstance(refused, nio.JoinError)
        assert refused.status_code == "M_FORBIDDEN"


async def deactivate(api: Api, client: nio.AsyncClient, *, erase: bool) -> None:
    localpart = client.user_id.split(":")[0][1:]
    status, body = await api.with_password_uia(
        "POST",
        "/account/deactivate",
        client.access_token,
        {"erase": erase},
        localpart,
        PASSWORD,
    )
    assert status == 200, body


def bodies(events: list[Any], sender: str) -> list[Any]:
    return [
        e.source["content"].get("body")
        for e in events
        if e.source.get("sender") == sender and e.source.get("type") == "m.room.message"
    ]


async def test_erased_users_messages_are_redacted_for_later_joiners(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with (
        nio_user(hs, api, "alice") as alice,
        nio_user(hs, api, "bob") as bob,
        nio_user(hs, api, "carol") as carol,
    ):
        created = await bob.room_create(visibility=nio.RoomVisibility.public)
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await alice.join(room_id), nio.JoinResponse)
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "my secret"}
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await deactivate(api, alice, erase=True)

        # Bob was there when it was sent: he still reads it.
        page = await bob.room_messages(room_id, limit=20)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert bodies(page.chunk, alice.user_id) == ["my secret"]

        # Carol joins after the erasure (history is shared): redacted everywhere.
        assert isinstance(await carol.join(room_id), nio.JoinResponse)
        page = await carol.room_messages(room_id, limit=20)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert bodies(page.chunk, alice.user_id) == [None]
        event = await carol.room_get_event(room_id, sent.event_id)
        assert isinstance(event, nio.RoomGetEventResponse), event
        assert event.event.source["content"] == {}
        context = await carol.room_context(room_id, sent.event_id)
        assert isinstance(context, nio.RoomContextResponse), context
        assert context.event.source["content"] == {}
        synced = await carol.sync(full_state=True)
        assert isinstance(synced, nio.SyncResponse), synced
        timeline = synced.rooms.join[room_id].timeline.events
        assert bodies(timeline, alice.user_id) == [None]
        assert "my secret" not in str([e.source for e in timeline])


async def test_deactivation_without_erase_keeps_messages(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with (
        nio_user(hs, api, "alice") as alice,
        nio_user(hs, api, "bob") as bob,
        nio_user(hs, api, "carol") as carol,
    ):
        created = await bob.room_create(visibility=nio.RoomVisibility.public)
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await alice.join(room_id), nio.JoinResponse)
        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "kept"}
        )
        await deactivate(api, alice, erase=False)
        assert isinstance(await carol.join(room_id), nio.JoinResponse)
        page = await carol.room_messages(room_id, limit=20)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert bodies(page.chunk, alice.user_id) == ["kept"]


async def set_ignored(api: Api, client: nio.AsyncClient, users: list[str]) -> None:
    path = f"/user/{client.user_id}/account_data/m.ignored_user_list"
    status, body = await api.call(
        "PUT",
        path,
        token=client.access_token,
        json={"ignored_users": {u: {} for u in users}},
    )
    assert status == 200, body


async def initial_sync(api: Api, client: nio.AsyncClient) -> Any:
    status, body = await api.call("GET", "/sync", token=client.access_token)
    assert status == 200, body
    return body


def json_texts(events: list[Any]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def texts(events: list[Any]) -> list[str]:
    return [e.body for e in events if isinstance(e, nio.RoomMessageText)]


async def test_ignored_users_messages_invites_and_pushes_are_hidden(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with (
        nio_user(hs, api, "alice") as alice,
        nio_user(hs, api, "bob") as bob,
        nio_user(hs, api, "carol") as carol,
    ):
        created = await carol.room_create(visibility=nio.RoomVisibility.public)
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        for client in (alice, bob):
            assert isinstance(await client.join(room_id), nio.JoinResponse)
        await set_ignored(api, bob, [alice.user_id])
        await sync_until(bob, lambda r: room_id in r.rooms.join)

        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "from alice"}
        )
        await carol.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "from carol"}
        )
        # Incremental sync: carol's message, not alice's.
        seen: list[str] = []

        def got_carol(r: nio.SyncResponse) -> bool:
            room = r.rooms.join.get(room_id)
            if room is not None:
                seen.extend(texts(room.timeline.events))
            return "from carol" in seen

        await sync_until(bob, got_carol)
        assert "from alice" not in seen
        page = await bob.room_messages(room_id, limit=50)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert texts(page.chunk) == ["from carol"]
        # Alice still sees both; carol too.
        page = await carol.room_messages(room_id, limit=50)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert texts(page.chunk) == ["from carol", "from alice"]
        # A fresh initial sync hides it as well, and counts only carol's message.
        joined = (await initial_sync(api, bob))["rooms"]["join"][room_id]
        assert json_texts(joined["timeline"]["events"]) == ["from carol"]
        assert joined["unread_notifications"]["notification_count"] == 1
        status, notifs = await api.call("GET", "/notifications", token=bob.access_token)
        assert status == 200, notifs
        senders = {n["event"]["sender"] for n in notifs["notifications"]}
        assert senders == {carol.user_id}

        # An invite from alice never shows up; one from carol does.
        from_alice = await alice.room_create(invite=[bob.user_id])
        assert isinstance(from_alice, nio.RoomCreateResponse), from_alice
        from_carol = await carol.room_create(invite=[bob.user_id])
        assert isinstance(from_carol, nio.RoomCreateResponse), from_carol
        invites = await sync_until(
            bob,
            lambda r: r.rooms.invite if from_carol.room_id in r.rooms.invite else None,
        )
        assert from_alice.room_id not in invites
        invited = (await initial_sync(api, bob))["rooms"]["invite"]
        assert from_alice.room_id not in invited
        assert from_carol.room_id in invited

        # Un-ignoring brings alice's messages back.
        await set_ignored(api, bob, [])
        page = await bob.room_messages(room_id, limit=50)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert texts(page.chunk) == ["from carol", "from alice"]


async def test_new_login_and_device_rename_reach_device_lists(
    server: tuple[Homeserver, Api],
) -> None:
    hs, api = server
    async with nio_user(hs, api, "alice") as alice, nio_user(hs, api, "bob") as bob:
        # Any shared room counts, encrypted or not.
        created = await alice.room_create(invite=[bob.user_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        await sync_until(bob, lambda r: created.room_id in r.rooms.invite)
        assert isinstance(await bob.join(created.room_id), nio.JoinResponse)
        await sync_until(bob, lambda r: created.room_id in r.rooms.join)
        await sync_until(alice, lambda r: True)
        before = bob.next_batch

        second = nio.AsyncClient(hs.base_url, alice.user_id)
        try:
            login = await second.login(PASSWORD, device_name="Laptop")
            assert isinstance(login, nio.LoginResponse), login
        finally:
            await second.close()

        def alice_changed(r: nio.SyncResponse) -> bool:
            return alice.user_id in r.device_list.changed

        await sync_until(bob, alice_changed)
        after_login = bob.next_batch
        status, changes = await api.call(
            "GET",
            f"/keys/changes?from={before}&to={after_login}",
            token=bob.access_token,
        )
        assert status == 200, changes
        assert alice.user_id in changes["changed"]
        # Alice's other device hears about it too (her own device list changed).
        await sync_until(alice, alice_changed)

        renamed = await alice.update_device(login.device_id, {"display_name": "Work"})
        assert isinstance(renamed, nio.UpdateDeviceResponse), renamed
        await sync_until(bob, alice_changed)
        status, devices = await api.call("GET", "/devices", token=alice.access_token)
        assert status == 200, devices
        names = {d["device_id"]: d.get("display_name") for d in devices["devices"]}
        assert names[login.device_id] == "Work"
