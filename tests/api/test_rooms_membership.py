"""Membership, join rules, history visibility and guest access over HTTP."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.rooms import make_guest, make_user, q, rooms_server


async def test_invite_only_room(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        eve = await make_user(api, "eve")
        room_id = await alice.create_room(preset="private_chat")
        status, out = await bob.join(room_id)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert (await alice.invite(room_id, bob.user_id))[0] == 200
        status, out = await bob.call("POST", f"/rooms/{q(room_id)}/join", {})
        assert (status, out) == (200, {"room_id": room_id})
        await bob.send(room_id, "hi alice")
        assert await alice.timeline_bodies(room_id) == ["hi alice"]
        # Outsiders can neither read nor find the room.
        status, out = await eve.messages(room_id)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await eve.call("GET", f"/rooms/{q(room_id)}/state")
        assert status == 403
        status, out = await eve.call(
            "GET", f"/rooms/{q('!nonexistent:localhost')}/state"
        )
        assert status == 403
        status, listed = await api.call("GET", "/publicRooms")
        assert listed["chunk"] == []
        # Members may invite in private_chat (invite level 0, as Synapse); inviting a
        # member fails.
        status, _ = await bob.invite(room_id, eve.user_id)
        assert status == 200
        status, _ = await alice.invite(room_id, bob.user_id)
        assert status == 403
        status, out = await alice.invite(room_id, "not-a-user")
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
        status, out = await alice.call("POST", f"/rooms/{q(room_id)}/invite", {})
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        status, joined = await bob.call("GET", "/joined_rooms")
        assert joined == {"joined_rooms": [room_id]}


async def test_leave_forget_kick_ban_unban(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        assert (await bob.join(room_id))[0] == 200  # re-join: no-op
        await alice.send(room_id, "before leave")
        status, out = await bob.call("POST", f"/rooms/{q(room_id)}/forget", {})
        assert (status, out["errcode"]) == (400, "M_UNKNOWN")
        assert (await bob.leave(room_id))[0] == 200
        assert (await bob.leave(room_id))[0] == 200  # twice: no-op
        await alice.send(room_id, "after leave")
        # A former member reads up to their leave.
        assert await bob.timeline_bodies(room_id) == ["before leave"]
        assert (await bob.call("POST", f"/rooms/{q(room_id)}/forget", {}))[0] == 200
        assert (await bob.call("GET", "/joined_rooms"))[1] == {"joined_rooms": []}

        await bob.join(room_id)
        path = f"/rooms/{q(room_id)}"
        status, out = await bob.call("POST", f"{path}/kick", {"user_id": alice.user_id})
        assert status == 403
        status, _ = await alice.call(
            "POST", f"{path}/kick", {"user_id": bob.user_id, "reason": "bye"}
        )
        assert status == 200
        status, out = await alice.call("POST", f"{path}/kick", {"user_id": bob.user_id})
        assert status == 403  # no longer in the room
        status, _ = await alice.call("POST", f"{path}/ban", {"user_id": bob.user_id})
        assert status == 200
        status, out = await bob.join(room_id)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, state = await alice.call(
            "GET", f"{path}/state/m.room.member/{q(bob.user_id)}"
        )
        assert state["membership"] == "ban"
        status, _ = await alice.call(
            "POST", f"{path}/unban", {"user_id": alice.user_id}
        )
        assert status == 403
        status, _ = await alice.call("POST", f"{path}/unban", {"user_id": bob.user_id})
        assert status == 200
        assert (await bob.join(room_id))[0] == 200
        status, out = await alice.call("POST", f"{path}/ban", {"user_id": "bad id"})
        assert status == 400
        status, out = await alice.call(
            "POST", f"/rooms/{q('!missing:localhost')}/kick", {"user_id": bob.user_id}
        )
        assert status == 404


async def test_knock_room(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(
            preset="private_chat",
            room_alias_name="knockme",
            initial_state=[
                {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}
            ],
        )
        assert (await bob.join(room_id))[0] == 403
        status, out = await bob.call(
            "POST", f"/knock/{q('#knockme:localhost')}", {"reason": "let me in"}
        )
        assert (status, out) == (200, {"room_id": room_id})
        status, member = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(bob.user_id)}"
        )
        assert member == {
            "membership": "knock",
            "displayname": "bob",
            "reason": "let me in",
        }
        assert (await alice.invite(room_id, bob.user_id))[0] == 200
        assert (await bob.join(room_id))[0] == 200
        await bob.send(room_id, "thanks")
        assert await alice.timeline_bodies(room_id) == ["thanks"]
        # Knocking on a public room is refused by the auth rules.
        public = await alice.create_room(preset="public_chat")
        status, out = await bob.call("POST", f"/knock/{q(public)}", {})
        assert status == 403


async def test_restricted_room_admits_members_of_allowed_room(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        eve = await make_user(api, "eve")
        space = await alice.create_room(preset="private_chat")
        await alice.invite(space, bob.user_id)
        await bob.join(space)
        room_id = await alice.create_room(
            preset="private_chat",
            initial_state=[
                {
                    "type": "m.room.join_rules",
                    "content": {
                        "join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": space}],
                    },
                }
            ],
        )
        status, out = await bob.join(room_id)
        assert status == 200, out
        status, member = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(bob.user_id)}"
        )
        assert member["join_authorised_via_users_server"] == alice.user_id
        await bob.send(room_id, "via the space")
        status, out = await eve.join(room_id)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")


async def test_late_joiner_history_visibility(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        results: dict[str, list[str]] = {}
        for hv in ("shared", "joined", "invited", "world_readable"):
            room_id = await alice.create_room(
                preset="public_chat",
                initial_state=[
                    {
                        "type": "m.room.history_visibility",
                        "content": {"history_visibility": hv},
                    }
                ],
            )
            await alice.send(room_id, "early")
            await alice.invite(room_id, bob.user_id)
            await alice.send(room_id, "while invited")
            await bob.join(room_id)
            await alice.send(room_id, "late")
            results[hv] = await bob.timeline_bodies(room_id)
        assert results["shared"] == ["early", "while invited", "late"]
        assert results["world_readable"] == ["early", "while invited", "late"]
        assert results["invited"] == ["while invited", "late"]
        assert results["joined"] == ["late"]


async def test_guest_access(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        guest = await make_guest(api)
        open_room = await alice.create_room(
            preset="public_chat",
            initial_state=[
                {"type": "m.room.history_visibility",
                 "content": {"history_visibility": "world_readable"}},
                {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}},
            ],
        )  # fmt: skip
        await alice.send(room_id=open_room, body="welcome guests")
        # Peeking a world-readable room works before joining.
        assert await guest.timeline_bodies(open_room) == ["welcome guests"]
        assert (await guest.join(open_room))[0] == 200
        await guest.send(open_room, "hello from a guest")
        closed = await alice.create_room(preset="public_chat")
        await alice.send(closed, "members only")
        status, out = await guest.join(closed)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await guest.messages(closed)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        # Guests may not create rooms.
        status, out = await guest.call("POST", "/createRoom", {})
        assert (status, out["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
        # Unauthenticated requests get spec errors.
        status, out = await api.call("GET", f"/rooms/{q(open_room)}/messages")
        assert (status, out["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_profile_changes_update_member_events(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room_id = await alice.create_room()
        status, _ = await alice.call(
            "PUT",
            f"/profile/{q(alice.user_id)}/displayname",
            {"displayname": "Alice A."},
        )
        assert status == 200
        status, member = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(alice.user_id)}"
        )
        assert member["displayname"] == "Alice A."
