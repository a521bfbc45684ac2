"""Aliases, canonical alias validation and the published room directory over HTTP."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.rooms import make_user, q, rooms_server


async def test_aliases(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(preset="public_chat", room_alias_name="main")
        alias = "#extra:localhost"
        path = f"/directory/room/{q(alias)}"
        status, out = await bob.call("PUT", path, {"room_id": room_id})
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")  # not a member
        assert (await alice.call("PUT", path, {"room_id": room_id}))[0] == 200
        status, out = await alice.call("PUT", path, {"room_id": room_id})
        assert status == 409
        status, out = await api.call("GET", "/directory/room/" + q(alias))
        assert out == {"room_id": room_id, "servers": ["localhost"]}
        status, out = await alice.call("GET", f"/rooms/{q(room_id)}/aliases")
        assert out == {"aliases": ["#main:localhost", alias]}
        for bad_path, code in (
            ("/directory/room/" + q("#x:elsewhere"), 400),
            ("/directory/room/" + q("nohash"), 400),
        ):
            status, out = await alice.call("PUT", bad_path, {"room_id": room_id})
            assert status == code, out
        status, out = await alice.call(
            "PUT",
            "/directory/room/" + q("#new:localhost"),
            {"room_id": "!unknown:localhost"},
        )
        assert status == 404
        status, out = await alice.call(
            "PUT", "/directory/room/" + q("#new:localhost"), {}
        )
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")

        # Canonical aliases must point at this room.
        status, out = await alice.put_state(
            room_id, "m.room.canonical_alias", {"alias": "#missing:localhost"}
        )
        assert (status, out["errcode"]) == (400, "M_BAD_ALIAS")
        # Not an alias at all: an invalid parameter; not a string: bad JSON.
        for content, errcode in (
            (
                {"alias": "#main:localhost", "alt_aliases": ["%main:localhost"]},
                "M_INVALID_PARAM",
            ),
            ({"alias": "#main:localhost", "alt_aliases": [5]}, "M_BAD_JSON"),
        ):
            status, out = await alice.put_state(
                room_id, "m.room.canonical_alias", content
            )
            assert (status, out["errcode"]) == (400, errcode), content
        status, out = await alice.put_state(
            room_id,
            "m.room.canonical_alias",
            {"alias": "#main:localhost", "alt_aliases": [alias]},
        )
        assert status == 200
        # Deleting: the creator or a room admin; the canonical alias forgets it.
        await bob.join(room_id)
        status, out = await bob.call("DELETE", path)
        assert status == 403
        assert (await alice.call("DELETE", path))[0] == 200
        status, out = await api.call("GET", "/directory/room/" + q(alias))
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        status, canonical = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.canonical_alias/"
        )
        assert canonical == {"alias": "#main:localhost", "alt_aliases": []}
        assert (await alice.call("DELETE", path))[0] == 404


async def test_room_directory_listing(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        rooms = []
        for i, name in enumerate(["Cats", "Dogs", "Birds"]):
            rooms.append(
                await alice.create_room(
                    preset="public_chat",
                    visibility="public",
                    name=name,
                    topic=f"about {i}",
                )
            )
        space = await alice.create_room(
            preset="public_chat",
            visibility="public",
            name="Pets space",
            creation_content={"type": "m.space"},
        )
        await bob.join(rooms[1])
        status, out = await api.call("GET", "/publicRooms?limit=2")
        assert status == 200
        assert out["total_room_count_estimate"] == 4
        assert out["chunk"][0]["room_id"] == rooms[1]  # most members first
        assert out["chunk"][0]["num_joined_members"] == 2
        status, nxt = await api.call(
            "GET", f"/publicRooms?limit=2&since={out['next_batch']}"
        )
        assert len(nxt["chunk"]) == 2
        assert "next_batch" not in nxt
        assert "prev_batch" in nxt
        status, out = await bob.call(
            "POST", "/publicRooms", {"filter": {"generic_search_term": "dog"}}
        )
        assert [r["room_id"] for r in out["chunk"]] == [rooms[1]]
        status, out = await bob.call(
            "POST", "/publicRooms", {"filter": {"room_types": ["m.space"]}}
        )
        assert [r["room_id"] for r in out["chunk"]] == [space]
        assert out["chunk"][0]["room_type"] == "m.space"
        status, out = await bob.call(
            "POST", "/publicRooms", {"filter": {"room_types": [None]}}
        )
        assert space not in [r["room_id"] for r in out["chunk"]]
        for bad in ({"limit": "x"}, {"filter": {"room_types": [1]}}, {"since": "zz"}):
            status, out = await bob.call("POST", "/publicRooms", bad)
            assert status == 400, bad
        # Another server's directory is fetched over federation: unreachable here.
        status, out = await api.call("GET", "/publicRooms?server=elsewhere.invalid")
        assert status in (400, 404, 502)
        assert out["errcode"].startswith("M_")

        # Publishing: room admins may, ordinary members may not.
        room = rooms[0]
        path = f"/directory/list/room/{q(room)}"
        assert (await api.call("GET", path))[1] == {"visibility": "public"}
        status, _ = await bob.call("PUT", path, {"visibility": "private"})
        assert status == 403
        await bob.join(room)
        status, _ = await bob.call("PUT", path, {"visibility": "private"})
        assert status == 403
        assert (await alice.call("PUT", path, {"visibility": "private"}))[0] == 200
        assert (await api.call("GET", path))[1] == {"visibility": "private"}
        status, _ = await alice.call("PUT", path, {"visibility": "hidden"})
        assert status == 400
        status, out = await api.call(
            "GET", f"/directory/list/room/{q('!no:localhost')}"
        )
        assert status == 404
