"""Server-side key backup through the client API (/room_keys/version, /room_keys/keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:localhost"


def key(index: int, forwarded: int = 0, verified: bool = False, tag: str = "x") -> Any:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ciphertext": tag, "ephemeral": "e", "mac": "m"},
    }


async def create_backup(user: User, auth: str = "a") -> str:
    body = await user.ok(
        "POST",
        "/room_keys/version",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": auth}},
    )
    version: str = body["version"]
    return version


async def test_backup_version_lifecycle(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        status, body = await alice.call("GET", "/room_keys/version")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        v1 = await create_backup(alice)
        current = await alice.ok("GET", "/room_keys/version")
        assert current == {
            "algorithm": ALGORITHM,
            "auth_data": {"public_key": "a"},
            "version": v1,
            "etag": "0",
            "count": 0,
        }
        await alice.ok(
            "PUT",
            f"/room_keys/version/{v1}",
            {"algorithm": ALGORITHM, "auth_data": {"public_key": "b"}, "version": v1},
        )
        assert (await alice.ok("GET", f"/room_keys/version/{v1}"))["auth_data"] == {
            "public_key": "b"
        }
        for body, errcode in (
            ({"algorithm": "other", "auth_data": {}}, "M_INVALID_PARAM"),
            (
                {"algorithm": ALGORITHM, "auth_data": {}, "version": "99"},
                "M_INVALID_PARAM",
            ),
            ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
            ({"auth_data": {}}, "M_MISSING_PARAM"),
        ):
            status, answer = await alice.call("PUT", f"/room_keys/version/{v1}", body)
            assert (status, answer["errcode"]) == (400, errcode), body
        status, answer = await alice.call(
            "PUT", "/room_keys/version/77", {"algorithm": ALGORITHM, "auth_data": {}}
        )
        assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")

        v2 = await create_backup(alice, "c")
        assert int(v2) > int(v1)
        assert (await alice.ok("GET", "/room_keys/version"))["version"] == v2
        await alice.ok("DELETE", f"/room_keys/version/{v2}")
        await alice.ok("DELETE", f"/room_keys/version/{v2}")  # again: still fine
        assert (await alice.ok("GET", "/room_keys/version"))["version"] == v1
        for path in ("/room_keys/version/999", "/room_keys/version/abc"):
            status, answer = await alice.call("GET", path)
            assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
            status, answer = await alice.call("DELETE", path)
            assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
        status, answer = await alice.call(
            "POST", "/room_keys/version", {"auth_data": {}}
        )
        assert (status, answer["errcode"]) == (400, "M_MISSING_PARAM")

        # Backups are per user.
        bob = await new_user(api, "bob")
        status, _ = await bob.call("GET", f"/room_keys/version/{v1}")
        assert status == 404


async def test_backup_keys_keep_the_better_copy(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        version = await create_backup(alice)
        path = f"/room_keys/keys/{ROOM}/s1?version={version}"
        first = await alice.ok("PUT", path, key(5, tag="first"))
        assert first == {"etag": "1", "count": 1}

        async def stored() -> Any:
            return (await alice.ok("GET", path))["session_data"]["ciphertext"]

        # Worse copies are ignored (and leave the etag alone).
        for worse in (key(6, tag="later index"), key(5, forwarded=1, tag="forwarded")):
            assert await alice.ok("PUT", path, worse) == {"etag": "1", "count": 1}
            assert await stored() == "first"
        # A lower first_message_index wins, then a verified copy wins over anything.
        await alice.ok("PUT", path, key(2, forwarded=3, tag="earlier"))
        assert await stored() == "earlier"
        await alice.ok("PUT", path, key(9, verified=True, tag="verified"))
        assert await stored() == "verified"
        await alice.ok("PUT", path, key(0, tag="unverified but earlier"))
        assert await stored() == "verified"
        etag = (await alice.ok("GET", "/room_keys/version"))["etag"]
        assert etag == "3"

        await alice.ok(
            "PUT",
            f"/room_keys/keys/{ROOM}?version={version}",
            {"sessions": {"s2": key(0), "s3": key(0)}},
        )
        await alice.ok(
            "PUT",
            f"/room_keys/keys?version={version}",
            {"rooms": {"!other:localhost": {"sessions": {"s4": key(1)}}}},
        )
        everything = await alice.ok("GET", f"/room_keys/keys?version={version}")
        assert set(everything["rooms"]) == {ROOM, "!other:localhost"}
        assert set(everything["rooms"][ROOM]["sessions"]) == {"s1", "s2", "s3"}
        room = await alice.ok("GET", f"/room_keys/keys/{ROOM}?version={version}")
        assert set(room["sessions"]) == {"s1", "s2", "s3"}
        assert (await alice.ok("GET", "/room_keys/version"))["count"] == 4

        empty = await alice.ok(
            "GET", f"/room_keys/keys/!nothing:localhost?version={version}"
        )
        assert empty == {"sessions": {}}
        status, body = await alice.call(
            "GET", f"/room_keys/keys/{ROOM}/nosuch?version={version}"
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        deleted = await alice.ok(
            "DELETE", f"/room_keys/keys/{ROOM}/s1?version={version}"
        )
        assert deleted["count"] == 3
        deleted = await alice.ok("DELETE", f"/room_keys/keys/{ROOM}?version={version}")
        assert deleted["count"] == 1
        deleted = await alice.ok("DELETE", f"/room_keys/keys?version={version}")
        assert deleted["count"] == 0
        assert (await alice.ok("GET", f"/room_keys/keys?version={version}")) == {
            "rooms": {}
        }


async def test_only_the_current_version_takes_keys(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        status, body = await alice.call(
            "PUT", f"/room_keys/keys/{ROOM}/s?version=1", key(0)
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        old = await create_backup(alice)
        await alice.ok("PUT", f"/room_keys/keys/{ROOM}/s?version={old}", key(0))
        new = await create_backup(alice)
        for method, path, body in (
            ("PUT", f"/room_keys/keys/{ROOM}/s", key(0)),
            ("PUT", f"/room_keys/keys/{ROOM}", {"sessions": {"s": key(0)}}),
            ("PUT", "/room_keys/keys", {"rooms": {ROOM: {"sessions": {"s": key(0)}}}}),
        ):
            status, answer = await alice.call(method, f"{path}?version={old}", body)
            assert status == 403, answer
            assert answer["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
            assert answer["current_version"] == new
        # The old version can still be read.
        kept = await alice.ok("GET", f"/room_keys/keys/{ROOM}/s?version={old}")
        assert kept["first_message_index"] == 0
        await alice.ok("DELETE", f"/room_keys/version/{old}")
        status, _ = await alice.call("GET", f"/room_keys/keys?version={old}")
        assert status == 404


async def test_backup_bad_input(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        version = await create_backup(alice)
        base = f"/room_keys/keys/{ROOM}/s?version={version}"
        bad_keys = [
            {**key(0), "first_message_index": -1},
            {**key(0), "first_message_index": "0"},
            {**key(0), "forwarded_count": 1.5},
            {**key(0), "is_verified": "yes"},
            {**key(0), "session_data": "x"},
            {"first_message_index": 0},
        ]
        for bad in bad_keys:
            status, body = await alice.call("PUT", base, bad)
            assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
        for method, path, body in (
            ("PUT", f"/room_keys/keys?version={version}", {}),
            ("PUT", f"/room_keys/keys?version={version}", {"rooms": {ROOM: []}}),
            ("PUT", f"/room_keys/keys/{ROOM}?version={version}", {"sessions": []}),
            ("PUT", f"/room_keys/keys/{ROOM}?version={version}", {}),
        ):
            status, answer = await alice.call(method, path, body)
            assert status == 400, (path, body, answer)
        for method in ("GET", "PUT", "DELETE"):
            status, answer = await alice.call(
                method, f"/room_keys/keys/{ROOM}/s", key(0)
            )
            assert (status, answer["errcode"]) == (400, "M_MISSING_PARAM")


async def test_auth_data_is_opaque_for_algorithms_outside_the_spec(
    tmp_path: Path, db_engine: EngineName
) -> None:
    """SyTest 07-backup (as Synapse): a non-spec algorithm's `auth_data` is kept as
    given, even a string; the spec's algorithm still needs an object."""
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        other = "m.megolm_backup.v1"
        created = await alice.ok(
            "POST",
            "/room_keys/version",
            {"algorithm": other, "auth_data": "anopaquestring"},
        )
        version = created["version"]
        current = await alice.ok("GET", "/room_keys/version")
        assert (current["algorithm"], current["auth_data"]) == (other, "anopaquestring")
        await alice.ok(
            "PUT",
            f"/room_keys/version/{version}",
            {"algorithm": other, "auth_data": "adifferentopaquestring"},
        )
        got = await alice.ok("GET", f"/room_keys/version/{version}")
        assert got["auth_data"] == "adifferentopaquestring"
        for body in (
            {"algorithm": ALGORITHM, "auth_data": "a string"},
            {"algorithm": ALGORITHM, "auth_data": ["a list"]},
        ):
            status, answer = await alice.call("POST", "/room_keys/version", body)
            assert (status, answer["errcode"]) == (400, "M_BAD_JSON"), body
        status, answer = await alice.call(
            "POST", "/room_keys/version", {"algorithm": other}
        )
        assert (status, answer["errcode"]) == (400, "M_MISSING_PARAM")
        # So is its keys' `session_data` (SyTest 07-backup "Can backup keys").
        path = f"/room_keys/keys/{ROOM}/s?version={version}"
        await alice.ok("PUT", path, {**key(0), "session_data": "anopaquestring"})
        assert (await alice.ok("GET", path))["session_data"] == "anopaquestring"
