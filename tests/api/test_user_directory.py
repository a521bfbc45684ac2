"""POST /user_directory/search on both engines: who may be found, matching, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import User, make_user, q


async def _search(user: User, term: Any, **extra: Any) -> tuple[int, Any]:
    return await user.call(
        "POST", "/user_directory/search", {"search_term": term, **extra}
    )


def _ids(body: Any) -> list[str]:
    return [r["user_id"] for r in body["results"]]


async def test_user_directory_search(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        carol = await make_user(api, "carol")
        dave = await make_user(api, "dave")
        bobby = await make_user(api, "bobby")
        # alice and bob share a private room; carol sits in a public room alone;
        # dave was in alice's room but left; bobby shares nothing.
        private = await alice.create_room(preset="private_chat")
        for member in (bob, dave):
            assert (await alice.invite(private, member.user_id))[0] == 200
            assert (await member.join(private))[0] == 200
        assert (await dave.leave(private))[0] == 200
        await carol.create_room(preset="public_chat")

        status, body = await _search(alice, "bo")
        assert status == 200, body
        assert _ids(body) == [bob.user_id]
        assert body["limited"] is False
        assert _ids((await _search(alice, "CAR"))[1]) == [carol.user_id]
        assert _ids((await _search(alice, "dave"))[1]) == []
        # The server name is not a searchable word; a term must start a word.
        assert _ids((await _search(alice, "localhost"))[1]) == []
        assert _ids((await _search(alice, "ob"))[1]) == []
        # bobby finds carol (public room) but not bob (no shared room).
        assert _ids((await _search(bobby, "b"))[1]) == []
        assert _ids((await _search(bobby, "carol"))[1]) == [carol.user_id]

        # Display names and avatars follow profile changes (member events).
        status, _ = await bob.call(
            "PUT",
            f"/profile/{q(bob.user_id)}/displayname",
            {"displayname": "Robert the Builder"},
        )
        assert status == 200
        status, _ = await bob.call(
            "PUT",
            f"/profile/{q(bob.user_id)}/avatar_url",
            {"avatar_url": "mxc://localhost/bob"},
        )
        assert status == 200
        status, body = await _search(alice, "the BUILD")
        assert status == 200
        assert body["results"] == [
            {
                "user_id": bob.user_id,
                "display_name": "Robert the Builder",
                "avatar_url": "mxc://localhost/bob",
            }
        ]
        assert _ids((await _search(alice, "robert nobody"))[1]) == []

        # Several matches, a limit, and the searcher themselves.
        status, _ = await alice.call(
            "PUT",
            f"/profile/{q(alice.user_id)}/displayname",
            {"displayname": "Alice Cooper"},
        )
        assert status == 200
        status, body = await _search(alice, "c")
        assert status == 200
        # Localpart matches rank before display-name matches.
        assert _ids(body) == [carol.user_id, alice.user_id]
        assert body["limited"] is False
        status, body = await _search(alice, "c", limit=1)
        assert (status, _ids(body), body["limited"]) == (200, [carol.user_id], True)
        status, body = await _search(alice, "   ")
        assert (status, body["results"], body["limited"]) == (200, [], False)


async def test_user_directory_bad_input(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        status, body = await alice.call("POST", "/user_directory/search", {})
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await _search(alice, 5)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        status, body = await _search(alice, "a", limit="ten")
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        status, body = await _search(alice, "a", limit=-1)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.call(
            "POST", "/user_directory/search", json={"search_term": "a"}
        )
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
