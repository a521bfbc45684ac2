"""E2E keys over federation between two Ranvier servers in one process: serving
/user/keys/query, /user/keys/claim and /user/devices; the remote device-list cache kept
current by m.device_list_update / m.signing_key_update EDUs; resync after a gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.federation.client import federation_path
from ranvier.storage.txn import Txn
from tests.federation.matrix_client import eventually
from tests.helpers.e2e import cross_signing_set, otks, upload_device_keys
from tests.helpers.federation import FedServer, acting_as, running_federation
from tests.helpers.sync import User, another_device

V1 = "/_matrix/federation/v1"


async def shared_room(alice: User, bob: User) -> str:
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob.user_id)

    async def invited() -> bool:
        return room_id in (await bob.sync())["rooms"]["invite"]

    await eventually(invited, what="invite over federation")
    await bob.join(room_id)

    async def joined() -> bool:
        members = await alice.ok("GET", f"/rooms/{room_id}/joined_members")
        return bob.user_id in members["joined"]

    await eventually(joined, what="join over federation")
    return room_id


async def cache_row(server: FedServer, user_id: str) -> tuple[int, bool] | None:
    def read(txn: Txn) -> tuple[int, bool] | None:
        txn.execute(
            "SELECT stream_id, stale FROM e2e_remote_device_lists WHERE user_id = ?",
            (user_id,),
        )
        row = txn.fetchone()
        return (int(row[0]), bool(row[1])) if row else None

    return await server.peer.homeserver.db.run_read_txn("test_cache_row", read)


async def query(user: User, target: str) -> dict[str, Any]:
    return await user.ok("POST", "/keys/query", {"device_keys": {target: []}})


async def test_serving_keys_to_other_servers(tmp_path: Path) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        hs1 = fed["hs1.test"]
        alice = await hs1.user("alice")
        await alice.ok("PUT", f"/devices/{alice.device_id}", {"display_name": "Laptop"})
        await upload_device_keys(alice)
        await alice.ok("POST", "/keys/upload", {"one_time_keys": otks("A", 1)})
        xs = cross_signing_set(alice.user_id)
        await alice.ok("POST", "/keys/device_signing/upload", xs.body)

        async with acting_as(fed["hs2.test"]) as hs2:
            status, body = await hs2.request(
                hs1,
                "POST",
                V1 + "/user/keys/query",
                {"device_keys": {alice.user_id: []}},
            )
            assert status == 200, body
            device = body["device_keys"][alice.user_id][alice.device_id]
            assert "unsigned" not in device  # no display names over federation
            assert alice.user_id in body["master_keys"]
            assert alice.user_id in body["self_signing_keys"]
            assert "user_signing_keys" not in body

            status, body = await hs2.request(
                hs1,
                "POST",
                V1 + "/user/keys/claim",
                {
                    "one_time_keys": {
                        alice.user_id: {alice.device_id: "signed_curve25519"}
                    }
                },
            )
            assert status == 200, body
            assert body["one_time_keys"][alice.user_id][alice.device_id] == {
                "signed_curve25519:A0": {"key": "Akey0"}
            }

            path = federation_path(V1 + "/user/devices/{}", alice.user_id)
            status, body = await hs2.request(hs1, "GET", path)
            assert status == 200, body
            assert body["user_id"] == alice.user_id
            assert body["stream_id"] >= 1
            assert [d["device_id"] for d in body["devices"]] == [alice.device_id]
            assert body["devices"][0]["keys"]["device_id"] == alice.device_id
            assert body["master_key"]["usage"] == ["master"]
            assert body["self_signing_key"]["usage"] == ["self_signing"]

            other = federation_path(V1 + "/user/devices/{}", "@bob:hs2.test")
            status, body = await hs2.request(hs1, "GET", other)
            assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
            status, body = await hs2.request(
                hs1, "POST", V1 + "/user/keys/query", {"device_keys": []}
            )
            assert (status, body["errcode"]) == (400, "M_BAD_JSON")

        # Without X-Matrix: refused.
        status, body = await hs1.api.call(
            "POST", "/user/keys/query", json={"device_keys": {}}, prefix=V1
        )
        assert status == 401


async def test_remote_device_list_cache_follows_edus(tmp_path: Path) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        hs1 = fed["hs1.test"]
        alice = await hs1.user("alice")
        bob = await fed["hs2.test"].user("bob")
        await upload_device_keys(bob)
        await shared_room(alice, bob)

        first = await query(alice, bob.user_id)
        assert set(first["device_keys"][bob.user_id]) == {bob.device_id}
        cached = await cache_row(hs1, bob.user_id)
        assert cached is not None
        assert not cached[1]
        since = (await alice.sync())["next_batch"]

        # A new device: the EDU updates the cache without a resync.
        phone = await another_device(bob, "PHONE")
        await upload_device_keys(phone)

        async def phone_seen() -> bool:
            keys = (await query(alice, bob.user_id))["device_keys"][bob.user_id]
            return "PHONE" in keys

        await eventually(phone_seen, what="new remote device")
        row = await cache_row(hs1, bob.user_id)
        # Two updates, in order: the login (new device, no keys yet), then its keys.
        assert row == (cached[0] + 2, False)

        async def announced() -> bool:
            # The cache is written before the device-lists stream moves: poll.
            changed = (await alice.sync(since))["device_lists"]["changed"]
            return bob.user_id in changed

        await eventually(announced, what="device_lists.changed")

        # Its deletion too.
        status, _ = await fed["hs2.test"].api.with_password_uia(
            "DELETE", "/devices/PHONE", bob.token, {}, "bob"
        )
        assert status == 200

        async def phone_gone() -> bool:
            keys = (await query(alice, bob.user_id))["device_keys"][bob.user_id]
            return "PHONE" not in keys

        await eventually(phone_gone, what="deleted remote device")

        # Cross-signing keys arrive as m.signing_key_update.
        xs = cross_signing_set(bob.user_id)
        await bob.ok("POST", "/keys/device_signing/upload", xs.body)

        async def master_seen() -> bool:
            return bob.user_id in (await query(alice, bob.user_id))["master_keys"]

        await eventually(master_seen, what="remote master key")
        answer = await query(alice, bob.user_id)
        assert (
            answer["master_keys"][bob.user_id]["keys"] == xs.body["master_key"]["keys"]
        )
        assert answer["user_signing_keys"] == {}


async def test_missed_update_marks_cache_stale_and_query_resyncs(
    tmp_path: Path,
) -> None:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as fed:
        hs1, hs2 = fed["hs1.test"], fed["hs2.test"]
        alice = await hs1.user("alice")
        bob = await hs2.user("bob")
        await upload_device_keys(bob)
        await shared_room(alice, bob)
        await query(alice, bob.user_id)
        cached = await cache_row(hs1, bob.user_id)
        assert cached is not None

        gap: dict[str, Any] = {
            "edu_type": "m.device_list_update",
            "content": {
                "user_id": bob.user_id,
                "device_id": "GHOST",
                "stream_id": cached[0] + 10,
                "prev_id": [cached[0] + 9],
                "deleted": False,
                "keys": {"user_id": bob.user_id, "device_id": "GHOST"},
            },
        }
        spoofed = {**gap, "content": {**gap["content"], "user_id": "@eve:hs1.test"}}
        async with acting_as(hs2) as remote:
            status, _ = await remote.send_transaction(hs1, [], [gap, spoofed])
            assert status == 200
        assert await cache_row(hs1, bob.user_id) == (cached[0], True)

        # The next query resyncs through /user/devices: the ghost never appears.
        answer = await query(alice, bob.user_id)
        assert set(answer["device_keys"][bob.user_id]) == {bob.device_id}
        assert await cache_row(hs1, bob.user_id) == (cached[0], False)
