"""Third-party (e-mail) invites end to end, against a fake identity server.

C-S API > Third-party invites; S-S API > Third-party invites (`/3pid/onbind`); the
m.room.member auth rules for `third_party_invite`.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any, cast

from ranvier.core.crypto.keys import SigningKey
from ranvier.storage.txn import EngineName
from tests.federation.fakes import free_port
from tests.helpers.accounts import accounts_server
from tests.helpers.identity import (
    ACCESS_TOKEN,
    FakeIdentityServer,
    fake_identity_server,
)
from tests.helpers.sync import User, new_user

JsonDict = dict[str, Any]
EMAIL = "lemurs@monkeyworld.org"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def invite_body(
    ids: FakeIdentityServer, address: str = EMAIL, **extra: Any
) -> JsonDict:
    return {
        "id_server": ids.name,
        "id_access_token": ACCESS_TOKEN,
        "medium": "email",
        "address": address,
        **extra,
    }


async def member_state(user: User, room_id: str, target: str) -> tuple[int, JsonDict]:
    return await user.call(
        "GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(target)}"
    )


async def third_party_invites(user: User, room_id: str) -> list[JsonDict]:
    status, state = await user.api.call(
        "GET", f"/rooms/{q(room_id)}/state", token=user.token
    )
    assert status == 200, state
    events = cast(list[JsonDict], state)  # a JSON array here
    return [e for e in events if e["type"] == "m.room.third_party_invite"]


async def test_unbound_address_then_bind(tmp_path: Path, db_engine: EngineName) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(
            tmp_path / "hs", engine=db_engine, overrides=ids.homeserver_overrides()
        ) as (hs, api),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room_id = await alice.create_room(preset="private_chat", name="Lemurs")
        await alice.ok("POST", f"/rooms/{q(room_id)}/invite", invite_body(ids))
        # Looked up first (hashed, with the client's token), then stored.
        assert ids.paths() == [
            "/_matrix/identity/v2/hash_details",
            "/_matrix/identity/v2/lookup",
            "/_matrix/identity/v2/store-invite",
        ]
        assert all(auth == f"Bearer {ACCESS_TOKEN}" for *_, auth in ids.requests)
        lookup = ids.requests[1][2]
        assert lookup is not None
        assert lookup["algorithm"] == "sha256"
        stored = ids.requests[2][2]
        assert stored is not None
        assert stored["sender"] == alice.user_id
        assert stored["room_id"] == room_id
        assert stored["room_name"] == "Lemurs"
        assert stored["sender_display_name"] == "alice"
        [tpi] = await third_party_invites(alice, room_id)
        key = ids.key.public_key_base64
        url = f"https://{ids.name}/_matrix/identity/v2/pubkey/isvalid"
        assert tpi["state_key"] == "tok1"
        assert tpi["sender"] == alice.user_id
        assert tpi["content"] == {
            "display_name": "Bob",
            "public_key": key,
            "key_validity_url": url,
            "public_keys": [{"public_key": key, "key_validity_url": url}],
        }
        assert (await member_state(alice, room_id, bob.user_id))[0] == 404

        since = (await bob.sync())["next_batch"]
        status, out = await ids.bind_and_notify(
            hs.base_url, "email", EMAIL, bob.user_id
        )
        assert (status, out) == (200, {})
        body = await bob.sync(since)
        invite = body["rooms"]["invite"][room_id]
        members = {
            e["state_key"]: e
            for e in invite["invite_state"]["events"]
            if e["type"] == "m.room.member"
        }
        assert members[alice.user_id]["content"]["membership"] == "join"
        assert members[bob.user_id]["content"]["membership"] == "invite"
        status, member = await member_state(alice, room_id, bob.user_id)
        assert status == 200
        assert member["membership"] == "invite"
        assert member["third_party_invite"]["display_name"] == "Bob"
        assert member["third_party_invite"]["signed"]["mxid"] == bob.user_id
        # The key was checked with the identity server before the invite was issued.
        assert ids.paths()[-1] == "/_matrix/identity/v2/pubkey/isvalid"
        await bob.join(room_id)
        status, member = await member_state(alice, room_id, bob.user_id)
        assert member["membership"] == "join"
        # A replayed onbind (the endpoint is unauthenticated) must not turn the join
        # back into an invite, although the auth rules alone would allow it.
        status, _ = await ids.bind_and_notify(hs.base_url, "email", EMAIL, bob.user_id)
        assert status == 200
        status, member = await member_state(alice, room_id, bob.user_id)
        assert member["membership"] == "join"


async def test_bound_address_is_a_direct_invite(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        ids.bind("email", EMAIL, bob.user_id)
        room_id = await alice.create_room(preset="private_chat")
        await alice.ok("POST", f"/rooms/{q(room_id)}/invite", invite_body(ids))
        assert "/_matrix/identity/v2/store-invite" not in ids.paths()
        status, member = await member_state(alice, room_id, bob.user_id)
        assert (status, member["membership"]) == (200, "invite")
        assert "third_party_invite" not in member
        assert await third_party_invites(alice, room_id) == []
        assert room_id in (await bob.sync())["rooms"]["invite"]


async def test_create_room_with_invite_3pid(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(
            tmp_path / "hs", engine=db_engine, overrides=ids.homeserver_overrides()
        ) as (hs, api),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        ids.bind("email", "bob@example.org", bob.user_id)
        room_id = await alice.create_room(
            invite_3pid=[
                invite_body(ids, "bob@example.org"),
                invite_body(ids, "carol@example.org"),
            ]
        )
        status, member = await member_state(alice, room_id, bob.user_id)
        assert (status, member["membership"]) == (200, "invite")
        [tpi] = await third_party_invites(alice, room_id)
        assert tpi["content"]["display_name"] == "Bob"
        status, _ = await ids.bind_and_notify(
            hs.base_url, "email", "carol@example.org", carol.user_id, method="POST"
        )
        assert status == 200
        await carol.join(room_id)
        status, member = await member_state(alice, room_id, carol.user_id)
        assert member["membership"] == "join"
        # Malformed entries are refused before any room is made.
        status, out = await alice.call(
            "POST", "/createRoom", {"invite_3pid": [{"medium": "email"}]}
        )
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        status, out = await alice.call("POST", "/createRoom", {"invite_3pid": ["x"]})
        assert (status, out["errcode"]) == (400, "M_BAD_JSON")
        assert len((await alice.ok("GET", "/joined_rooms"))["joined_rooms"]) == 1


async def test_forged_or_revoked_invites_are_refused(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        eve = await new_user(api, "eve")
        room_id = await alice.create_room(preset="private_chat")
        await alice.ok("POST", f"/rooms/{q(room_id)}/invite", invite_body(ids))
        # Signed with a key the room's invite does not list.
        forger = SigningKey.from_seed(b"\x42" * 32, "0")
        status, out = await ids.bind_and_notify(
            hs.base_url, "email", EMAIL, bob.user_id, key=forger
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        # Not signed at all.
        body = ids.onbind_body("email", EMAIL, bob.user_id)
        del body["invites"][0]["signed"]["signatures"]
        status, out = await api.call(
            "PUT", "/_matrix/federation/v1/3pid/onbind", json=body, prefix=""
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        # Signed for bob, claimed for eve.
        body = ids.onbind_body("email", EMAIL, bob.user_id)
        body["invites"][0]["mxid"] = eve.user_id
        status, out = await api.call(
            "PUT", "/_matrix/federation/v1/3pid/onbind", json=body, prefix=""
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        # Properly signed, but the identity server has revoked the key.
        ids.revoked.add(ids.key.public_key_base64)
        status, out = await ids.bind_and_notify(
            hs.base_url, "email", EMAIL, bob.user_id
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert (await member_state(alice, room_id, bob.user_id))[0] == 404
        # A client cannot slip a forged third_party_invite past the auth rules either.
        [tpi] = await third_party_invites(alice, room_id)
        forged = {
            "membership": "invite",
            "third_party_invite": {
                "display_name": "Bob",
                "signed": ids.sign(
                    {"mxid": eve.user_id, "token": tpi["state_key"]}, forger
                ),
            },
        }
        status, out = await alice.call(
            "PUT", f"/rooms/{q(room_id)}/state/m.room.member/{q(eve.user_id)}", forged
        )
        assert status == 403, out
        assert (await member_state(alice, room_id, eve.user_id))[0] == 404
        # Garbage on onbind is a 400, never a 500.
        junks: list[Any] = [{"invites": "x"}, {"invites": [1]}, {"invites": [{}]}, []]
        for junk in junks:
            status, out = await api.call(
                "PUT", "/_matrix/federation/v1/3pid/onbind", json=junk, prefix=""
            )
            assert (status, out["errcode"]) == (400, "M_BAD_JSON"), junk


async def test_blocked_identity_servers_are_refused(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        # The identity server's CA is trusted, but loopback stays blocked.
        accounts_server(
            tmp_path / "hs", overrides=ids.homeserver_overrides(allow_loopback=False)
        ) as (_hs, api),
    ):
        alice = await new_user(api, "alice")
        room_id = await alice.create_room()
        path = f"/rooms/{q(room_id)}/invite"
        for server in (ids.name, f"localhost:{ids.port}", f"[::1]:{ids.port}"):
            status, out = await alice.call(
                "POST", path, invite_body(ids, id_server=server)
            )
            assert (status, out["errcode"]) == (400, "M_SERVER_NOT_TRUSTED"), server
        assert ids.requests == []
        assert await third_party_invites(alice, room_id) == []


async def test_redirect_to_a_blocked_address_is_refused(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        room_id = await alice.create_room()
        # 127.0.0.2 is loopback too, but only 127.0.0.1 is allowed.
        ids.redirect_hash_details = (
            f"https://127.0.0.2:{ids.port}/_matrix/identity/v2/hash_details"
        )
        status, out = await alice.call(
            "POST", f"/rooms/{q(room_id)}/invite", invite_body(ids)
        )
        assert (status, out["errcode"]) == (400, "M_SERVER_NOT_TRUSTED")
        assert ids.paths() == ["/_matrix/identity/v2/hash_details"]


async def test_invite_errors(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        eve = await new_user(api, "eve")
        # Invites need power 50 here (private_chat itself gives invite power 0).
        room_id = await alice.create_room(
            preset="private_chat", power_level_content_override={"invite": 50}
        )
        path = f"/rooms/{q(room_id)}/invite"
        body = invite_body(ids)
        del body["id_access_token"]
        status, out = await alice.call("POST", path, body)
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        status, out = await alice.call("POST", path, {**invite_body(ids), "medium": 1})
        assert (status, out["errcode"]) == (400, "M_BAD_JSON")
        status, out = await alice.call(
            "POST", path, invite_body(ids, medium="carrier-pigeon")
        )
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
        status, out = await alice.call(
            "POST", path, invite_body(ids, id_server="not a server")
        )
        assert (status, out["errcode"]) == (400, "M_SERVER_NOT_TRUSTED")
        # The identity server refuses the token: its error, as a 400 (not its 401,
        # which the client would take for its own token).
        status, out = await alice.call(
            "POST", path, invite_body(ids, id_access_token="wrong")
        )
        assert (status, out["errcode"]) == (400, "M_UNAUTHORIZED")
        # Not a member: refused before the identity server hears of the room.
        before = len(ids.requests)
        status, out = await eve.call("POST", path, invite_body(ids))
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert len(ids.requests) == before
        # A member below the invite level (50 here) is refused too.
        carol = await new_user(api, "carol")
        await alice.ok("POST", path, {"user_id": carol.user_id})
        await carol.join(room_id)
        status, out = await carol.call("POST", path, invite_body(ids))
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert len(ids.requests) == before
        status, out = await alice.call(
            "POST", f"/rooms/{q('!nope:localhost')}/invite", invite_body(ids)
        )
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        # The identity server is down.
        down = f"127.0.0.1:{free_port()}"
        status, out = await alice.call("POST", path, invite_body(ids, id_server=down))
        assert (status, out["errcode"]) == (502, "M_UNKNOWN")
        assert await third_party_invites(alice, room_id) == []


async def test_join_with_third_party_signed(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room_id = await alice.create_room(preset="private_chat")
        await alice.ok("POST", f"/rooms/{q(room_id)}/invite", invite_body(ids))
        [tpi] = await third_party_invites(alice, room_id)
        block = {
            "mxid": bob.user_id,
            "sender": alice.user_id,
            "token": tpi["state_key"],
        }
        forger = SigningKey.from_seed(b"\x44" * 32, "0")
        status, out = await bob.call(
            "POST",
            f"/join/{q(room_id)}",
            {"third_party_signed": ids.sign(block, forger)},
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await bob.call(
            "POST", f"/join/{q(room_id)}", {"third_party_signed": {"mxid": "x"}}
        )
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        assert (await member_state(alice, room_id, bob.user_id))[0] == 404
        await bob.ok(
            "POST", f"/join/{q(room_id)}", {"third_party_signed": ids.sign(block)}
        )
        status, member = await member_state(alice, room_id, bob.user_id)
        assert member["membership"] == "join"


async def test_invite_completes_after_the_inviter_left(tmp_path: Path) -> None:
    """The 3pid rules check the invite's sender against the m.room.third_party_invite,
    not the sender's membership (SyTest: "... after inviter leaves")."""
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        room_id = await alice.create_room(preset="private_chat")
        await alice.ok(
            "POST", f"/rooms/{q(room_id)}/invite", {"user_id": carol.user_id}
        )
        await carol.join(room_id)
        await alice.ok("POST", f"/rooms/{q(room_id)}/invite", invite_body(ids))
        await alice.leave(room_id)
        status, _ = await ids.bind_and_notify(hs.base_url, "email", EMAIL, bob.user_id)
        assert status == 200
        await bob.join(room_id)
        status, member = await member_state(carol, room_id, bob.user_id)
        assert member["membership"] == "join"
