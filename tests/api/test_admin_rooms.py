"""Synapse admin API, rooms, on both engines: list/search/order/pagination, details,
members, state, block, forward extremities and the asynchronous v2 delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api.test_admin_users import OVERRIDES, admin_user
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import make_user, q

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"


async def test_rooms_admin(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        alpha = await root.create_room(
            preset="public_chat", name="Alpha", room_alias_name="alpha"
        )
        beta = await root.create_room(name="Beta", topic="b topic")
        gamma = await bob.create_room()
        assert (await bob.join(alpha))[0] == 200

        status, out = await bob.call("GET", f"{V1}/rooms", prefix="")
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await root.call("GET", f"{V1}/rooms", prefix="")
        assert status == 200, out
        assert out["total_rooms"] == 3
        assert out["offset"] == 0
        # Unnamed rooms sort first by name.
        assert [r["room_id"] for r in out["rooms"]] == [gamma, alpha, beta]
        a = out["rooms"][1]
        assert a["name"] == "Alpha"
        assert a["canonical_alias"] == "#alpha:localhost"
        assert a["joined_members"] == 2
        assert a["joined_local_members"] == 2
        assert a["join_rules"] == "public"
        assert a["creator"] == root.user_id
        assert a["federatable"] is True
        assert a["state_events"] >= 5
        status, out = await root.call(
            "GET", f"{V1}/rooms?order_by=joined_members&dir=b&limit=1", prefix=""
        )
        assert [r["room_id"] for r in out["rooms"]] == [alpha]
        assert out["next_batch"] == 1
        status, out = await root.call("GET", f"{V1}/rooms?from=2&limit=1", prefix="")
        assert [r["room_id"] for r in out["rooms"]] == [beta]
        assert out["prev_batch"] == 1
        assert "next_batch" not in out
        status, out = await root.call("GET", f"{V1}/rooms?search_term=alp", prefix="")
        assert [r["room_id"] for r in out["rooms"]] == [alpha]
        status, out = await root.call(
            "GET", f"{V1}/rooms?order_by=size&dir=b", prefix=""
        )
        assert out["rooms"][0]["room_id"] == alpha
        for bad in ("order_by=nope", "dir=up", "from=-1"):
            status, out = await root.call("GET", f"{V1}/rooms?{bad}", prefix="")
            assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), bad

        status, out = await root.call("GET", f"{V1}/rooms/{q(beta)}", prefix="")
        assert (status, out["topic"], out["name"]) == (200, "b topic", "Beta")
        status, out = await root.call(
            "GET", f"{V1}/rooms/{q('!nope:localhost')}", prefix=""
        )
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        status, out = await root.call(
            "GET", f"{V1}/rooms/{q(alpha)}/members", prefix=""
        )
        assert out == {"members": sorted([root.user_id, bob.user_id]), "total": 2}
        status, out = await root.call("GET", f"{V1}/rooms/{q(alpha)}/state", prefix="")
        assert status == 200
        assert {e["type"] for e in out["state"]} >= {"m.room.create", "m.room.name"}
        # Messages: every event, even of rooms the admin is not in.
        await bob.send(gamma, "only bob")
        msgs = f"{V1}/rooms/{q(gamma)}/messages"
        status, out = await root.call("GET", f"{msgs}?dir=b&limit=1", prefix="")
        assert status == 200, out
        assert [e["content"].get("body") for e in out["chunk"]] == ["only bob"]
        status, out = await root.call(
            "GET", f"{msgs}?dir=b&limit=50&from={out['end']}", prefix=""
        )
        assert out["chunk"][-1]["type"] == "m.room.create"
        status, out = await root.call("GET", f"{msgs}?limit=2", prefix="")
        assert out["chunk"][0]["type"] == "m.room.create"
        status, out = await root.call("GET", f"{msgs}?from=bogus", prefix="")
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
        status, out = await root.call(
            "GET", f"{V1}/rooms/{q(alpha)}/forward_extremities", prefix=""
        )
        assert status == 200
        assert out["count"] == 1
        assert out["results"][0]["event_id"].startswith("$")

        # Block.
        block = f"{V1}/rooms/{q(beta)}/block"
        assert await root.call("GET", block, prefix="") == (200, {"block": False})
        assert await root.call("PUT", block, {"block": True}, prefix="") == (
            200,
            {"block": True},
        )
        assert await root.call("GET", block, prefix="") == (
            200,
            {"block": True, "user_id": root.user_id},
        )
        status, out = await root.call("PUT", block, {}, prefix="")
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        # Local users can no longer join a blocked room.
        status, out = await bob.join(beta)
        assert (status, out["errcode"], out["error"]) == (
            403,
            "M_FORBIDDEN",
            "This room has been blocked on this server",
        )

        # Asynchronous delete: local members leave, aliases go, status reported.
        status, out = await bob.call("DELETE", f"{V2}/rooms/{q(alpha)}", {}, prefix="")
        assert status == 403
        status, out = await root.call(
            "DELETE", f"{V2}/rooms/{q(alpha)}", {"block": True}, prefix=""
        )
        assert status == 200, out
        delete_id = out["delete_id"]
        for _ in range(100):
            status, out = await root.call(
                "GET", f"{V2}/rooms/delete_status/{delete_id}", prefix=""
            )
            if out["status"] == "complete":
                break
            await asyncio.sleep(0.05)
        assert out["status"] == "complete", out
        assert sorted(out["shutdown_room"]["kicked_users"]) == sorted(
            [root.user_id, bob.user_id]
        )
        assert out["shutdown_room"]["local_aliases"] == ["#alpha:localhost"]
        status, out = await root.call(
            "GET", f"{V2}/rooms/{q(alpha)}/delete_status", prefix=""
        )
        assert [r["delete_id"] for r in out["results"]] == [delete_id]
        status, out = await root.call(
            "GET", f"{V1}/rooms/{q(alpha)}/members", prefix=""
        )
        assert out["total"] == 0
        status, out = await root.call("GET", f"{V1}/rooms/{q(alpha)}/block", prefix="")
        assert out["block"] is True
        status, out = await root.call(
            "GET", f"{V2}/rooms/delete_status/nope", prefix=""
        )
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")


async def test_make_room_admin(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        carol = await make_user(api, "carol")
        room = await bob.create_room(preset="private_chat")
        path = f"{V1}/rooms/{q(room)}/make_room_admin"
        status, out = await carol.call(
            "POST", path, {"user_id": carol.user_id}, prefix=""
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await root.call(
            "POST", path, {"user_id": carol.user_id}, prefix=""
        )
        assert (status, out) == (200, {})
        # Carol was invited and, once joined, can do what admins do.
        assert (await carol.join(room))[0] == 200
        status, levels = await carol.call(
            "GET", f"/rooms/{q(room)}/state/m.room.power_levels/"
        )
        assert status == 200
        assert levels["users"][carol.user_id] == 100
        status, _ = await carol.put_state(room, "m.room.name", {"name": "mine now"})
        assert status == 200
        status, out = await root.call(
            "POST", path, {"user_id": "@x:elsewhere.example"}, prefix=""
        )
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
