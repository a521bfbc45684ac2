"""Space hierarchies and mutual rooms through matrix-nio (and HTTP for what nio lacks).

A space holds public, invite-only, world-readable and restricted rooms and a subspace;
Bob, who is in none of them but the space, sees what the spec lets him see, in the
spec's order, in pages, bounded by depth, optionally only suggested rooms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nio import AsyncClient, SpaceGetHierarchyError, SpaceGetHierarchyResponse

from ranvier.storage.txn import EngineName
from tests.clients.test_rooms_nio import nio_client
from tests.helpers.accounts import V1, accounts_server
from tests.helpers.rooms import User, make_user, q

SPACE = {"creation_content": {"type": "m.space"}}


async def _child(alice: User, space: str, room: str, **content: Any) -> None:
    status, out = await alice.put_state(
        space, "m.space.child", {"via": ["localhost"], **content}, state_key=room
    )
    assert status == 200, out


async def _ids(client: AsyncClient, space: str, **kw: Any) -> list[str]:
    resp = await client.space_get_hierarchy(space, **kw)
    assert isinstance(resp, SpaceGetHierarchyResponse), resp
    return [r["room_id"] for r in resp.rooms]


async def test_space_hierarchy(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice = await make_user(api, "alice")
        space = await alice.create_room(preset="public_chat", name="Space", **SPACE)
        public = await alice.create_room(preset="public_chat", name="Public")
        secret = await alice.create_room(preset="private_chat", name="Secret")
        readable = await alice.create_room(
            preset="private_chat",
            initial_state=[
                {
                    "type": "m.room.history_visibility",
                    "content": {"history_visibility": "world_readable"},
                }
            ],
        )
        members_only = await alice.create_room(
            preset="private_chat",
            room_version="10",
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
        sub = await alice.create_room(preset="public_chat", **SPACE)
        deep = await alice.create_room(preset="public_chat", name="Deep")
        await _child(alice, space, public, order="b")
        await _child(alice, space, secret, order="a")
        await _child(alice, space, readable, suggested=True)
        await _child(alice, space, members_only)
        await _child(alice, space, sub, order="c", suggested=True)
        await _child(alice, sub, deep)
        # Removed (no via): not listed.
        await _child(alice, space, "!gone:localhost")
        await alice.put_state(space, "m.space.child", {}, state_key="!gone:localhost")

        async with nio_client(hs.base_url, api, "bob") as bob:
            await bob.join(space)
            everything = await _ids(bob, space)
            # Depth first: ordered children ("a" hidden), then unordered ones by time.
            assert everything[:4] == [space, public, sub, deep]
            assert set(everything[4:]) == {readable, members_only}
            assert secret not in everything
            # nio leaves out a max_depth of 0, so that one goes over HTTP.
            status, out = await api.call(
                "GET",
                f"/rooms/{q(space)}/hierarchy?max_depth=0",
                token=bob.access_token,
                prefix=V1,
            )
            assert [r["room_id"] for r in out["rooms"]] == [space]
            assert deep not in await _ids(bob, space, max_depth=1)
            assert await _ids(bob, space, suggested_only=True) == [space, sub, readable]

            first = await bob.space_get_hierarchy(space, limit=2)
            assert isinstance(first, SpaceGetHierarchyResponse), first
            seen = [r["room_id"] for r in first.rooms]
            token = first.next_batch
            while token:
                page = await bob.space_get_hierarchy(space, limit=2, from_page=token)
                assert isinstance(page, SpaceGetHierarchyResponse), page
                seen += [r["room_id"] for r in page.rooms]
                token = page.next_batch
            assert seen == everything

            root = first.rooms[0]
            assert root["room_type"] == "m.space"
            assert root["name"] == "Space"
            assert root["room_version"] == "12"
            assert root["num_joined_members"] == 2
            children = {c["state_key"]: c for c in root["children_state"]}
            assert set(children) == {public, secret, readable, members_only, sub}
            assert children[public]["content"]["order"] == "b"
            assert isinstance(children[public]["origin_server_ts"], int)
            restricted = next(
                r for r in (await _raw(bob, space)) if r["room_id"] == members_only
            )
            assert restricted["allowed_room_ids"] == [space]
            assert restricted["children_state"] == []

            # Changing max_depth mid-way, a foreign token, and bad numbers: 400.
            for path in (
                f"/rooms/{q(space)}/hierarchy?from={first.next_batch}&max_depth=3",
                f"/rooms/{q(space)}/hierarchy?from=bogus",
                f"/rooms/{q(sub)}/hierarchy?from={first.next_batch}",
                f"/rooms/{q(space)}/hierarchy?limit=0",
                f"/rooms/{q(space)}/hierarchy?max_depth=-1",
            ):
                status, out = await api.call(
                    "GET", path, token=bob.access_token, prefix=V1
                )
                assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), path

            # Rooms Bob may not see are refused as the root.
            denied = await bob.space_get_hierarchy(secret)
            assert isinstance(denied, SpaceGetHierarchyError), denied
            assert denied.status_code == "M_FORBIDDEN"
            missing = await bob.space_get_hierarchy("!nowhere:localhost")
            assert isinstance(missing, SpaceGetHierarchyError), missing

            # Once Bob has left the space, the restricted room is hidden again.
            await bob.room_leave(space)
            assert members_only not in await _ids(bob, space)


async def _raw(client: AsyncClient, space: str) -> list[dict[str, Any]]:
    resp = await client.space_get_hierarchy(space)
    assert isinstance(resp, SpaceGetHierarchyResponse), resp
    return list(resp.rooms)


async def test_mutual_rooms(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        carol = await make_user(api, "carol")
        shared = []
        for _ in range(3):
            room = await alice.create_room(preset="public_chat")
            assert (await bob.join(room))[0] == 200
            shared.append(room)
        await alice.create_room(preset="public_chat")  # Alice's alone
        left = await alice.create_room(preset="public_chat")
        await bob.join(left)
        await bob.leave(left)
        for path in (
            f"/_matrix/client/v1/mutual_rooms?user_id={q(bob.user_id)}",
            "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"
            f"?user_id={q(bob.user_id)}",
        ):
            status, out = await alice.call("GET", path, prefix="")
            assert status == 200, out
            assert out == {"joined": sorted(shared), "count": 3}
        status, out = await alice.call(
            "GET", f"/mutual_rooms?user_id={q(carol.user_id)}", prefix=V1
        )
        assert out == {"joined": [], "count": 0}
        for query, errcode in (
            ("", "M_MISSING_PARAM"),
            ("?user_id=nobody", "M_INVALID_PARAM"),
            (f"?user_id={q(alice.user_id)}", "M_INVALID_PARAM"),
            (f"?user_id={q(bob.user_id)}&from=%21%21", "M_INVALID_PARAM"),
        ):
            status, out = await alice.call("GET", "/mutual_rooms" + query, prefix=V1)
            assert (status, out["errcode"]) == (400, errcode), query
        status, versions = await api.call("GET", "/versions", prefix="/_matrix/client")
        assert versions["unstable_features"]["uk.half-shot.msc2666.query_mutual_rooms"]
