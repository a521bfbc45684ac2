"""Membership across two Ranvier servers in one process, driven through matrix-nio:
direct chats started with `createRoom` inviting another server's user, and invites from
another server rejected (the room then shows under `rooms.leave`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio

from ranvier.federation.client import federation_path
from tests.federation.fakes import transport_of
from tests.federation.matrix_client import eventually
from tests.helpers.accounts import PASSWORD
from tests.helpers.federation import FedServer, acting_as, running_federation

DEADLINE_SECONDS = 30


@asynccontextmanager
async def nio_user(server: FedServer, localpart: str) -> AsyncIterator[nio.AsyncClient]:
    user = await server.user(localpart)
    client = nio.AsyncClient(server.base_url, user.user_id, user.device_id)
    client.restore_login(user.user_id, user.device_id, user.token)
    try:
        yield client
    finally:
        await client.close()


async def sync_until(
    client: nio.AsyncClient, found: Callable[[nio.SyncResponse], Any]
) -> Any:
    async def loop() -> Any:
        while True:
            response = await client.sync(timeout=500)
            assert isinstance(response, nio.SyncResponse), response
            value = found(response)
            if value:
                return value

    return await asyncio.wait_for(loop(), DEADLINE_SECONDS)


def invite_member_event(
    response: nio.SyncResponse, room_id: str, user_id: str
) -> nio.InviteMemberEvent | None:
    room = response.rooms.invite.get(room_id)
    if room is None:
        return None
    for event in room.invite_state:
        if isinstance(event, nio.InviteMemberEvent) and event.state_key == user_id:
            return event
    return None


async def test_create_room_inviting_a_remote_user_starts_a_direct_chat(
    tmp_path: Path,
) -> None:
    async with (
        running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed,
        nio_user(fed["hs1.test"], "alice") as alice,
        nio_user(fed["hs2.test"], "bob") as bob,
    ):
        created = await alice.room_create(
            invite=[bob.user_id],
            is_direct=True,
            preset=nio.RoomPreset.trusted_private_chat,
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        invite = await sync_until(
            bob, lambda r: invite_member_event(r, room_id, bob.user_id)
        )
        assert invite.content.get("is_direct") is True
        assert invite.sender == alice.user_id
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined

        def bob_joined(r: nio.SyncResponse) -> bool:
            room = alice.rooms.get(room_id)
            return room is not None and bob.user_id in room.users

        await sync_until(alice, bob_joined)
        # trusted_private_chat: the remote invitee is a creator too (room v12+).
        create = await alice.room_get_state_event(room_id, "m.room.create")
        assert isinstance(create, nio.RoomGetStateEventResponse), create
        assert create.content.get("additional_creators") == [bob.user_id]


async def test_rejected_remote_invite_moves_to_rooms_leave(tmp_path: Path) -> None:
    async with (
        running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed,
        nio_user(fed["hs1.test"], "alice") as alice,
        nio_user(fed["hs2.test"], "bob") as bob,
    ):
        created = await alice.room_create(invite=[bob.user_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await sync_until(bob, lambda r: room_id in r.rooms.invite)
        left = await bob.room_leave(room_id)
        assert isinstance(left, nio.RoomLeaveResponse), left

        def leave_event(r: nio.SyncResponse) -> Any:
            room = r.rooms.leave.get(room_id)
            if room is None:
                return None
            assert room_id not in r.rooms.invite
            return [
                e
                for e in room.timeline.events
                if isinstance(e, nio.RoomMemberEvent) and e.state_key == bob.user_id
            ]

        # The incremental sync after the rejection has the room under `leave`, with
        # the leave event itself.
        [event] = await sync_until(bob, leave_event)
        assert event.membership == "leave"
        assert event.sender == bob.user_id
        # A later sync does not bring the invite back.
        again = await bob.sync(timeout=0)
        assert isinstance(again, nio.SyncResponse), again
        assert room_id not in again.rooms.invite

        def bob_left(r: nio.SyncResponse) -> bool:
            room = alice.rooms.get(room_id)
            return room is not None and bob.user_id not in room.invited_users

        await sync_until(alice, bob_left)


async def test_rejecting_an_invite_when_the_inviters_server_is_down(
    tmp_path: Path,
) -> None:
    async with (
        running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed,
        nio_user(fed["hs1.test"], "alice") as alice,
        nio_user(fed["hs2.test"], "bob") as bob,
    ):
        created = await alice.room_create(invite=[bob.user_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await sync_until(bob, lambda r: room_id in r.rooms.invite)
        # hs1 goes away: make_leave cannot reach it.
        transport_of(fed["hs2.test"].peer).unregister("hs1.test")
        left = await bob.room_leave(room_id)
        assert isinstance(left, nio.RoomLeaveResponse), left

        def left_room(r: nio.SyncResponse) -> Any:
            room = r.rooms.leave.get(room_id)
            return room is not None and any(
                isinstance(e, nio.RoomMemberEvent)
                and e.state_key == bob.user_id
                and e.membership == "leave"
                for e in room.timeline.events
            )

        await sync_until(bob, left_room)
        again = await bob.sync(timeout=0, full_state=True)
        assert isinstance(again, nio.SyncResponse), again
        assert room_id not in again.rooms.invite


async def test_guest_joins_remote_room_only_with_guest_access(tmp_path: Path) -> None:
    async with running_federation(
        tmp_path, ["hs1.test", "hs2.test"], allow_guests=True
    ) as fed:
        hs2 = fed["hs2.test"]
        status, body = await hs2.api.call("POST", "/register?kind=guest", json={})
        assert status == 200, body
        guest = nio.AsyncClient(hs2.base_url, body["user_id"], body["device_id"])
        guest.restore_login(body["user_id"], body["device_id"], body["access_token"])
        async with nio_user(fed["hs1.test"], "alice") as alice:
            try:
                closed = await alice.room_create(
                    visibility=nio.RoomVisibility.public, alias="closed"
                )
                assert isinstance(closed, nio.RoomCreateResponse), closed
                refused = await guest.join("#closed:hs1.test")
                assert isinstance(refused, nio.JoinError), refused
                assert refused.status_code == "M_FORBIDDEN"

                # The resident had accepted the join before the state told us:
                # it is withdrawn with a leave.
                async def withdrawn() -> bool:
                    member = await alice.room_get_state_event(
                        closed.room_id, "m.room.member", guest.user_id
                    )
                    return (
                        isinstance(member, nio.RoomGetStateEventResponse)
                        and member.content.get("membership") == "leave"
                    )

                await eventually(withdrawn, what="the guest's join withdrawn")

                open_room = await alice.room_create(
                    visibility=nio.RoomVisibility.public,
                    alias="open",
                    initial_state=[
                        {
                            "type": "m.room.guest_access",
                            "state_key": "",
                            "content": {"guest_access": "can_join"},
                        }
                    ],
                )
                assert isinstance(open_room, nio.RoomCreateResponse), open_room
                joined = await guest.join("#open:hs1.test")
                assert isinstance(joined, nio.JoinResponse), joined
                assert joined.room_id == open_room.room_id
            finally:
                await guest.close()


async def test_erased_users_events_are_served_redacted_to_other_servers(
    tmp_path: Path,
) -> None:
    async with (
        running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed,
        nio_user(fed["hs1.test"], "alice") as alice,
        nio_user(fed["hs1.test"], "bob") as bob,
        nio_user(fed["hs2.test"], "dave") as dave,
    ):
        hs1 = fed["hs1.test"]
        created = await bob.room_create(
            visibility=nio.RoomVisibility.public, alias="erased"
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await alice.join(room_id), nio.JoinResponse)
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "my secret"}
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "still here"}
        )
        status, body = await hs1.api.with_password_uia(
            "POST",
            "/account/deactivate",
            alice.access_token,
            {"erase": True},
            "alice",
            PASSWORD,
        )
        assert status == 200, body

        assert isinstance(await dave.join("#erased:hs1.test"), nio.JoinResponse)

        # hs2 back-paginates from hs1 (`/backfill`): alice's message arrives redacted.
        async def backfilled() -> list[Any]:
            page = await dave.room_messages(room_id, limit=50)
            assert isinstance(page, nio.RoomMessagesResponse), page
            return [e.source for e in page.chunk if e.event_id == sent.event_id]

        [served] = await eventually(backfilled, what="alice's message backfilled")
        assert served["content"] == {}
        # `/event` asked by hs2 directly.
        async with acting_as(fed["hs2.test"]) as hs2:
            path = federation_path("/_matrix/federation/v1/event/{}", sent.event_id)
            status, answer = await hs2.request(hs1, "GET", path)
        assert status == 200, answer
        [pdu] = answer["pdus"]
        assert pdu["content"] == {}
        assert pdu["sender"] == alice.user_id


async def test_new_login_sends_a_device_list_update_to_other_servers(
    tmp_path: Path,
) -> None:
    async with (
        running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed,
        nio_user(fed["hs1.test"], "alice") as alice,
        nio_user(fed["hs2.test"], "bob") as bob,
    ):
        created = await alice.room_create(invite=[bob.user_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await sync_until(bob, lambda r: room_id in r.rooms.invite)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await sync_until(bob, lambda r: room_id in r.rooms.join)

        def bob_joined(r: nio.SyncResponse) -> bool:
            room = alice.rooms.get(room_id)
            return room is not None and bob.user_id in room.users

        await sync_until(alice, bob_joined)
        await bob.sync(timeout=0)

        second = nio.AsyncClient(fed["hs1.test"].base_url, alice.user_id)
        try:
            login = await second.login(PASSWORD, device_name="Laptop")
            assert isinstance(login, nio.LoginResponse), login
        finally:
            await second.close()

        # hs2 hears of it through `m.device_list_update` and tells bob.
        await sync_until(bob, lambda r: alice.user_id in r.device_list.changed)
        status, answer = await fed["hs2.test"].api.call(
            "POST",
            "/keys/query",
            token=bob.access_token,
            json={"device_keys": {alice.user_id: []}},
        )
        assert status == 200, answer
