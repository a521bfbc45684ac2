"""Real client libraries (matrix-nio, mautrix) chatting through a running Ranvier.

Two users talk in public, invite-only, knock and restricted rooms; an announcement room
refuses ordinary members' messages; late joiners see earlier history only as the history
visibility allows; a guest reads a world-readable room and is refused elsewhere; bad
requests come back as spec errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.errors import MForbidden, MNotFound, MUnknownToken
from mautrix.types import (
    MessageType,
    PaginationDirection,
    RoomAlias,
    RoomCreatePreset,
    RoomID,
    TextMessageEventContent,
    UserID,
)
from nio import (
    AsyncClient,
    JoinError,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendError,
    RoomSendResponse,
    RoomVisibility,
)

from tests.helpers.accounts import PASSWORD, Api
from tests.helpers.rooms import make_guest, make_user, rooms_server


@asynccontextmanager
async def nio_client(
    base_url: str, api: Api, localpart: str
) -> AsyncIterator[AsyncClient]:
    await api.register(localpart)
    client = AsyncClient(base_url, f"@{localpart}:localhost")
    try:
        login = await client.login(PASSWORD)
        assert isinstance(login, LoginResponse), login
        yield client
    finally:
        await client.close()


async def nio_bodies(client: AsyncClient, room_id: str) -> list[str]:
    resp = await client.room_messages(room_id, limit=50)
    assert isinstance(resp, RoomMessagesResponse), resp
    return [e.body for e in reversed(resp.chunk) if isinstance(e, RoomMessageText)]


async def nio_send(
    client: AsyncClient, room_id: str, body: str
) -> RoomSendResponse | RoomSendError:
    return await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body}
    )


def mautrix_client(
    base_url: str, session: aiohttp.ClientSession, user_id: str, token: str
) -> ClientAPI:
    return ClientAPI(
        UserID(user_id), api=HTTPAPI(base_url, token, client_session=session)
    )


async def mautrix_bodies(client: ClientAPI, room_id: str) -> list[str]:
    page = await client.get_messages(
        RoomID(room_id), PaginationDirection.BACKWARD, limit=50
    )
    # A functional NamedTuple: mypy does not see its fields.
    events: list[Any] = page.events  # type: ignore[attr-defined]
    return [
        str(e.content["body"])
        for e in reversed(events)
        if str(e.type) == "m.room.message" and "body" in e.content
    ]


async def test_nio_public_invite_only_and_knock_rooms(tmp_path: Path) -> None:
    async with (
        rooms_server(tmp_path) as (hs, api),
        nio_client(hs.base_url, api, "alice") as alice,
        nio_client(hs.base_url, api, "bob") as bob,
    ):
        # Public room, joined through its alias.
        created = await alice.room_create(
            visibility=RoomVisibility.public, alias="town", name="Town square"
        )
        assert isinstance(created, RoomCreateResponse), created
        public = created.room_id
        joined = await bob.join("#town:localhost")
        assert isinstance(joined, JoinResponse), joined
        assert joined.room_id == public
        assert isinstance(await nio_send(alice, public, "hi bob"), RoomSendResponse)
        assert isinstance(await nio_send(bob, public, "hi alice"), RoomSendResponse)
        assert await nio_bodies(bob, public) == ["hi bob", "hi alice"]
        members = await alice.joined_members(public)
        assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}

        # Invite-only room.
        created = await alice.room_create(preset=RoomPreset.private_chat, name="Secret")
        assert isinstance(created, RoomCreateResponse)
        private = created.room_id
        refused = await bob.join(private)
        assert isinstance(refused, JoinError)
        assert refused.status_code == "M_FORBIDDEN"
        assert isinstance(await nio_send(bob, private, "let me in"), RoomSendError)
        await alice.room_invite(private, bob.user_id)
        assert isinstance(await bob.join(private), JoinResponse)
        assert isinstance(await nio_send(bob, private, "thanks"), RoomSendResponse)
        assert await nio_bodies(alice, private) == ["thanks"]

        # Knock room.
        created = await alice.room_create(preset=RoomPreset.private_chat, name="Door")
        assert isinstance(created, RoomCreateResponse)
        door = created.room_id
        await alice.room_enable_knocking(door)
        assert isinstance(await bob.join(door), JoinError)
        knocked = await bob.room_knock(door, reason="hello?")
        assert getattr(knocked, "room_id", None) == door, knocked
        await alice.room_invite(door, bob.user_id)
        assert isinstance(await bob.join(door), JoinResponse)
        assert isinstance(await nio_send(bob, door, "came in"), RoomSendResponse)
        assert await nio_bodies(alice, door) == ["came in"]


async def test_mautrix_restricted_and_announcement_rooms(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api), aiohttp.ClientSession() as session:
        users = {name: await make_user(api, name) for name in ("alice", "bob", "eve")}
        alice, bob, eve = (
            mautrix_client(hs.base_url, session, u.user_id, u.token)
            for u in users.values()
        )
        space = await alice.create_room(preset=RoomCreatePreset.PRIVATE, name="Team")
        await alice.invite_user(space, bob.mxid)
        await bob.join_room(space)
        restricted = await alice.create_room(
            preset=RoomCreatePreset.PRIVATE,
            initial_state=cast(
                Any,
                [
                    {
                        "type": "m.room.join_rules",
                        "content": {
                            "join_rule": "restricted",
                            "allow": [{"type": "m.room_membership", "room_id": space}],
                        },
                    }
                ],
            ),
        )
        assert await bob.join_room(restricted) == restricted
        await bob.send_text(restricted, "in via the team")
        with pytest.raises(MForbidden):
            await eve.join_room(restricted, max_retries=0)
        assert await mautrix_bodies(alice, restricted) == ["in via the team"]

        # Announcements: only moderators (50) may post.
        news = await alice.create_room(
            preset=RoomCreatePreset.PUBLIC,
            power_level_override=cast(
                Any, {"events_default": 50, "users": {bob.mxid: 50}}
            ),
        )
        await bob.join_room(news)
        await eve.join_room(news)
        await alice.send_text(news, "release 1.0 is out")
        await bob.send_text(news, "mod note")
        with pytest.raises(MForbidden):
            await eve.send_message(
                news, TextMessageEventContent(msgtype=MessageType.TEXT, body="can I?")
            )
        assert await mautrix_bodies(eve, news) == ["release 1.0 is out", "mod note"]


async def test_late_joiner_sees_history_per_visibility(tmp_path: Path) -> None:
    async with (
        rooms_server(tmp_path) as (hs, api),
        nio_client(hs.base_url, api, "alice") as alice,
        nio_client(hs.base_url, api, "bob") as bob,
    ):
        seen: dict[str, list[str]] = {}
        for visibility in ("shared", "joined"):
            created = await alice.room_create(
                preset=RoomPreset.public_chat,
                initial_state=[
                    {
                        "type": "m.room.history_visibility",
                        "state_key": "",
                        "content": {"history_visibility": visibility},
                    }
                ],
            )
            assert isinstance(created, RoomCreateResponse)
            await nio_send(alice, created.room_id, "before bob")
            assert isinstance(await bob.join(created.room_id), JoinResponse)
            await nio_send(alice, created.room_id, "after bob")
            seen[visibility] = await nio_bodies(bob, created.room_id)
        assert seen["shared"] == ["before bob", "after bob"]
        assert seen["joined"] == ["after bob"]


async def test_guest_reads_world_readable_room_only(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api), aiohttp.ClientSession() as session:
        owner = await make_user(api, "owner")
        guest_user = await make_guest(api)
        alice = mautrix_client(hs.base_url, session, owner.user_id, owner.token)
        guest = mautrix_client(
            hs.base_url, session, guest_user.user_id, guest_user.token
        )
        lobby = await alice.create_room(
            preset=RoomCreatePreset.PUBLIC,
            initial_state=cast(Any, [
                {"type": "m.room.history_visibility",
                 "content": {"history_visibility": "world_readable"}},
                {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}},
            ]),
        )  # fmt: skip
        await alice.send_text(lobby, "visitors welcome")
        assert await mautrix_bodies(guest, lobby) == ["visitors welcome"]
        assert await guest.join_room(lobby) == lobby
        await guest.send_text(lobby, "hello from a guest")
        assert await mautrix_bodies(alice, lobby) == [
            "visitors welcome",
            "hello from a guest",
        ]

        members_only = await alice.create_room(preset=RoomCreatePreset.PUBLIC)
        await alice.send_text(members_only, "members only")
        with pytest.raises(MForbidden):
            await guest.join_room(members_only, max_retries=0)
        with pytest.raises(MForbidden):
            await guest.get_messages(members_only, PaginationDirection.BACKWARD)


async def test_bad_requests_get_spec_errors(tmp_path: Path) -> None:
    async with (
        rooms_server(tmp_path) as (hs, api),
        nio_client(hs.base_url, api, "alice") as alice,
        aiohttp.ClientSession() as session,
    ):
        err = await nio_send(alice, "!nowhere:localhost", "hello?")
        assert isinstance(err, RoomSendError)
        assert err.status_code == "M_NOT_FOUND"
        bad = await alice.room_create(room_version="999")
        assert not isinstance(bad, RoomCreateResponse)
        assert getattr(bad, "status_code", None) == "M_UNSUPPORTED_ROOM_VERSION"
        nobody = mautrix_client(hs.base_url, session, "@x:localhost", "not-a-token")
        with pytest.raises(MUnknownToken):
            await nobody.join_room(RoomAlias("#town:localhost"), max_retries=0)
        owner = await make_user(api, "owner")
        client = mautrix_client(hs.base_url, session, owner.user_id, owner.token)
        with pytest.raises(MNotFound):
            await client.join_room(RoomAlias("#missing:localhost"), max_retries=0)
