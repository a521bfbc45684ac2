"""POST /search (room_events) through the real server, on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import User, make_user, q

JsonDict = dict[str, Any]


async def _search(
    user: User, criteria: JsonDict, next_batch: str | None = None
) -> tuple[int, JsonDict]:
    path = "/search" + (f"?next_batch={next_batch}" if next_batch else "")
    status, out = await user.call(
        "POST", path, {"search_categories": {"room_events": criteria}}
    )
    return status, out


async def _found(user: User, criteria: JsonDict) -> list[str]:
    status, out = await _search(user, criteria)
    assert status == 200, out
    results = out["search_categories"]["room_events"]["results"]
    return [r["result"]["content"].get("body", "") for r in results]


async def test_search_rank_recent_and_pagination(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        room = await alice.create_room(name="Alien chat")
        await alice.send(room, "martians landed near the lake")
        await alice.send(room, "nothing to see here")
        await alice.send(room, "martians martians martians everywhere")
        await alice.send(room, "Were the MARTIANS friendly?")

        status, out = await _search(alice, {"search_term": "martians"})
        assert status == 200, out
        events = out["search_categories"]["room_events"]
        assert events["count"] == 3
        assert events["highlights"] == ["martians"]
        ranks = [r["rank"] for r in events["results"]]
        assert ranks == sorted(ranks, reverse=True)
        assert events["results"][0]["result"]["content"]["body"] == (
            "martians martians martians everywhere"
        )
        assert events["results"][0]["result"]["room_id"] == room

        recent = await _found(alice, {"search_term": "martians", "order_by": "recent"})
        assert recent == [
            "Were the MARTIANS friendly?",
            "martians martians martians everywhere",
            "martians landed near the lake",
        ]
        # Prefix matching and every word required.
        assert await _found(alice, {"search_term": "marti lake"}) == [
            "martians landed near the lake"
        ]
        # Room names are searchable through content.name only.
        status, named = await _search(
            alice, {"search_term": "alien", "keys": ["content.name"]}
        )
        hits = named["search_categories"]["room_events"]["results"]
        assert [h["result"]["type"] for h in hits] == ["m.room.name"]

        seen: list[str] = []
        token: str | None = None
        for _ in range(5):
            criteria = {
                "search_term": "martians",
                "order_by": "recent",
                "keys": ["content.body"],
                "filter": {"limit": 2},
            }
            status, page = await _search(alice, criteria, token)
            assert status == 200, page
            body = page["search_categories"]["room_events"]
            seen += [r["result"]["event_id"] for r in body["results"]]
            token = body.get("next_batch")
            if token is None:
                break
        assert len(seen) == len(set(seen)) == 3

        status, ranked1 = await _search(
            alice, {"search_term": "martians", "filter": {"limit": 2}}
        )
        first = ranked1["search_categories"]["room_events"]
        status, ranked2 = await _search(
            alice,
            {"search_term": "martians", "filter": {"limit": 2}},
            first["next_batch"],
        )
        second = ranked2["search_categories"]["room_events"]
        ids = [r["result"]["event_id"] for r in first["results"] + second["results"]]
        assert len(set(ids)) == 3
        assert "next_batch" not in second


async def test_search_context_state_groups_and_filter(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        other = await alice.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        await alice.send(room, "before one")
        await bob.send(room, "the needle")
        await alice.send(room, "after one")
        await alice.send(other, "another needle")

        status, out = await _search(
            alice,
            {
                "search_term": "needle",
                "order_by": "recent",
                "event_context": {
                    "before_limit": 1,
                    "after_limit": 1,
                    "include_profile": True,
                },
                "include_state": True,
                "groupings": {"group_by": [{"key": "room_id"}, {"key": "sender"}]},
            },
        )
        assert status == 200, out
        events = out["search_categories"]["room_events"]
        by_room = {r["result"]["room_id"]: r for r in events["results"]}
        ctx = by_room[room]["context"]
        assert [e["content"]["body"] for e in ctx["events_before"]] == ["before one"]
        assert [e["content"]["body"] for e in ctx["events_after"]] == ["after one"]
        assert bob.user_id in ctx["profile_info"]
        assert "displayname" in ctx["profile_info"][bob.user_id]
        assert set(events["state"]) == {room, other}
        assert any(e["type"] == "m.room.create" for e in events["state"][room])
        groups = events["groups"]
        assert set(groups["room_id"]) == {room, other}
        assert set(groups["sender"]) == {alice.user_id, bob.user_id}

        only_bob = await _found(
            alice, {"search_term": "needle", "filter": {"senders": [bob.user_id]}}
        )
        assert only_bob == ["the needle"]
        not_room = await _found(
            alice, {"search_term": "needle", "filter": {"not_rooms": [room]}}
        )
        assert not_room == ["another needle"]
        no_type = await _found(
            alice, {"search_term": "needle", "filter": {"types": ["m.other"]}}
        )
        assert no_type == []


async def test_search_visibility_and_redaction(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        eve = await make_user(api, "eve")
        room = await alice.create_room(preset="public_chat")
        await alice.put_state(
            room, "m.room.history_visibility", {"history_visibility": "joined"}
        )
        await alice.send(room, "secret plans before bob")
        assert (await bob.join(room))[0] == 200
        await alice.send(room, "secret plans with bob")
        assert (await bob.leave(room))[0] == 200
        await alice.send(room, "secret plans after bob")
        redacted = await alice.send(room, "secret plans redacted")

        # Eve was never in the room.
        assert await _found(eve, {"search_term": "secret"}) == []
        # Bob sees only what he could see while joined.
        assert await _found(bob, {"search_term": "secret"}) == ["secret plans with bob"]

        status, out = await alice.call(
            "PUT", f"/rooms/{q(room)}/redact/{q(redacted)}/x1", {}
        )
        assert status == 200, out
        assert "secret plans redacted" not in await _found(
            alice, {"search_term": "secret"}
        )


async def test_search_bad_input(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        status, out = await alice.call("POST", "/search", {})
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        status, out = await alice.call("POST", "/search", {"search_categories": 1})
        assert (status, out["errcode"]) == (400, "M_BAD_JSON")
        status, out = await alice.call("POST", "/search", {"search_categories": {}})
        assert (status, out) == (200, {"search_categories": {}})
        cases: list[tuple[JsonDict, str]] = [
            ({}, "M_MISSING_PARAM"),
            ({"search_term": 5}, "M_BAD_JSON"),
            ({"search_term": "x", "order_by": "best"}, "M_INVALID_PARAM"),
            ({"search_term": "x", "keys": ["content.url"]}, "M_INVALID_PARAM"),
            ({"search_term": "x", "keys": "content.body"}, "M_BAD_JSON"),
            ({"search_term": "x", "filter": {"limit": -1}}, "M_BAD_JSON"),
            (
                {"search_term": "x", "event_context": {"before_limit": -1}},
                "M_INVALID_PARAM",
            ),
            ({"search_term": "x", "event_context": {"after_limit": "5"}}, "M_BAD_JSON"),
            (
                {"search_term": "x", "groupings": {"group_by": [{"key": "type"}]}},
                "M_INVALID_PARAM",
            ),
            (
                {"search_term": "x", "groupings": {"group_by": ["room_id"]}},
                "M_BAD_JSON",
            ),
            ({"search_term": "x", "include_state": "yes"}, "M_BAD_JSON"),
        ]
        for criteria, errcode in cases:
            status, out = await _search(alice, criteria)
            assert (status, out.get("errcode")) == (400, errcode), criteria
        for token in ("zzz", "recent:5", "rank:-1", "rank:99999999999999999999"):
            status, out = await _search(alice, {"search_term": "x"}, token)
            assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), token
        for token in ("recent:-3", "recent:7"):
            criteria = {"search_term": "x", "order_by": "recent"}
            status, out = await _search(alice, criteria, token)
            assert status == 200, (token, out)
        # Punctuation and query syntax are never errors.
        for term in ('"', "a AND OR NOT (", "*", "  ", "ünïcödé:*&|!"):
            status, out = await _search(alice, {"search_term": term})
            assert status == 200, (term, out)
