"""E2E key management through the client API: /keys/upload, /keys/query, /keys/claim,
/keys/changes, cross-signing uploads, signatures, and how they show up in /sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.e2e import (
    cross_signing_set,
    device_keys,
    new_key,
    otks,
    upload_device_keys,
)
from tests.helpers.sync import User, another_device, new_user


async def shared_room(alice: User, bob: User) -> str:
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob.user_id)
    await bob.join(room_id)
    return room_id


# -- /keys/upload ------------------------------------------------------------------------------
async def test_upload_device_and_one_time_keys(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        await alice.ok("PUT", f"/devices/{alice.device_id}", {"display_name": "Laptop"})
        _, keys = device_keys(alice.user_id, alice.device_id)
        up = await alice.ok(
            "POST",
            "/keys/upload",
            {
                "device_keys": keys,
                "one_time_keys": otks("A", 3),
                "fallback_keys": {"signed_curve25519:F": {"key": "fb"}},
            },
        )
        assert up == {"one_time_key_counts": {"signed_curve25519": 3}}
        # Re-uploading the same keys changes nothing.
        again = await alice.ok("POST", "/keys/upload", {"one_time_keys": otks("A", 3)})
        assert again["one_time_key_counts"] == {"signed_curve25519": 3}

        sync = await alice.sync()
        assert sync["device_one_time_keys_count"] == {"signed_curve25519": 3}
        assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"]

        queried = await bob.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        served = queried["device_keys"][alice.user_id][alice.device_id]
        assert served["keys"] == keys["keys"]
        assert served["signatures"] == keys["signatures"]
        assert served["unsigned"] == {"device_display_name": "Laptop"}
        assert queried["failures"] == {}


async def test_upload_refuses_bad_device_keys(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        _, keys = device_keys(alice.user_id, alice.device_id)
        cases = [
            ({**keys, "user_id": "@mallory:localhost"}, "M_INVALID_PARAM"),
            ({**keys, "device_id": "OTHER"}, "M_INVALID_PARAM"),
            # Missing or mistyped required fields are M_BAD_JSON (as Synapse, SyTest).
            ({**keys, "algorithms": "not a list"}, "M_BAD_JSON"),
            ({k: v for k, v in keys.items() if k != "algorithms"}, "M_BAD_JSON"),
            ({k: v for k, v in keys.items() if k != "keys"}, "M_BAD_JSON"),
            ({k: v for k, v in keys.items() if k != "signatures"}, "M_BAD_JSON"),
        ]
        for bad, errcode in cases:
            status, body = await alice.call(
                "POST", "/keys/upload", {"device_keys": bad}
            )
            assert (status, body["errcode"]) == (400, errcode), bad
        status, body = await alice.call("POST", "/keys/upload", {"device_keys": "nope"})
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_upload_stores_keys_whose_self_signature_does_not_verify(
    tmp_path: Path, db_engine: EngineName
) -> None:
    """As Synapse (and SyTest's placeholder keys): the server stores a device's own keys
    without checking the self-signature; clients verify it on /keys/query."""
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        await shared_room(alice, bob)
        placeholder = {
            "user_id": alice.user_id,
            "device_id": alice.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {
                f"curve25519:{alice.device_id}": "curve25519+key",
                f"ed25519:{alice.device_id}": "ed25519+key",
            },
            "signatures": {alice.user_id: {f"ed25519:{alice.device_id}": "self+sig"}},
        }
        await alice.ok("POST", "/keys/upload", {"device_keys": placeholder})
        queried = await bob.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        served = queried["device_keys"][alice.user_id][alice.device_id]
        assert served["keys"] == placeholder["keys"]
        assert served["signatures"] == placeholder["signatures"]
        # `unsigned` is always there on /keys/query (as Synapse), even with no name.
        assert served["unsigned"] == {}


async def test_upload_refuses_bad_one_time_and_fallback_keys(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        await alice.ok("POST", "/keys/upload", {"one_time_keys": otks("A", 1)})
        changed = {"signed_curve25519:A0": {"key": "different"}}
        status, body = await alice.call(
            "POST", "/keys/upload", {"one_time_keys": changed}
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        bad_uploads: list[dict[str, Any]] = [
            {"one_time_keys": {"no_algorithm": "k"}},
            {"one_time_keys": {"curve25519:A": 5}},
            {"one_time_keys": []},
            {"fallback_keys": {"a:1": "x", "a:2": "y"}},
            {"fallback_keys": "x"},
        ]
        for bad in bad_uploads:
            status, body = await alice.call("POST", "/keys/upload", bad)
            assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
        counts = await alice.ok("POST", "/keys/upload", {})
        assert counts["one_time_key_counts"] == {"signed_curve25519": 1}


# -- /keys/claim -------------------------------------------------------------------------------
async def test_claim_takes_each_one_time_key_once_then_the_fallback(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        await alice.ok(
            "POST",
            "/keys/upload",
            {
                "one_time_keys": otks("A", 2),
                "fallback_keys": {"signed_curve25519:FB": {"key": "fallback"}},
            },
        )
        query = {
            "one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}
        }
        seen = []
        for _ in range(2):
            claimed = await bob.ok("POST", "/keys/claim", query)
            (key_map,) = claimed["one_time_keys"][alice.user_id].values()
            seen.extend(key_map)
        assert sorted(seen) == ["signed_curve25519:A0", "signed_curve25519:A1"]
        assert (await alice.sync())["device_unused_fallback_key_types"] == [
            "signed_curve25519"
        ]
        for _ in range(2):  # the fallback key is handed out as often as needed
            claimed = await bob.ok("POST", "/keys/claim", query)
            assert claimed["one_time_keys"][alice.user_id][alice.device_id] == {
                "signed_curve25519:FB": {"key": "fallback"}
            }
        sync = await alice.sync()
        assert sync["device_one_time_keys_count"] == {"signed_curve25519": 0}
        assert sync["device_unused_fallback_key_types"] == []
        # A new fallback key is unused again.
        await alice.ok(
            "POST",
            "/keys/upload",
            {"fallback_keys": {"signed_curve25519:FB2": {"key": "fallback2"}}},
        )
        assert (await alice.sync())["device_unused_fallback_key_types"] == [
            "signed_curve25519"
        ]

        missing = await bob.ok(
            "POST",
            "/keys/claim",
            {"one_time_keys": {alice.user_id: {"NODEVICE": "signed_curve25519"}}},
        )
        assert missing == {"one_time_keys": {}, "failures": {}}
        for bad, errcode in (
            ({}, "M_MISSING_PARAM"),
            ({"one_time_keys": {alice.user_id: ["x"]}}, "M_BAD_JSON"),
            ({"one_time_keys": {alice.user_id: {"D": 1}}}, "M_BAD_JSON"),
        ):
            status, body = await bob.call("POST", "/keys/claim", bad)
            assert (status, body["errcode"]) == (400, errcode)


# -- /keys/query -------------------------------------------------------------------------------
async def test_query_filters_devices_and_reports_unreachable_servers(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        phone = await another_device(alice, "PHONE")
        bob = await new_user(api, "bob")
        await upload_device_keys(alice)
        await upload_device_keys(phone)
        both = await bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
        assert set(both["device_keys"][alice.user_id]) == {alice.device_id, "PHONE"}
        one = await bob.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: ["PHONE"]}}
        )
        assert set(one["device_keys"][alice.user_id]) == {"PHONE"}
        nobody = await bob.ok(
            "POST",
            "/keys/query",
            {
                "device_keys": {"@ghost:localhost": [], "@x:unreachable.invalid": []},
                "timeout": 2000,
            },
        )
        assert nobody["device_keys"] == {"@ghost:localhost": {}}
        assert set(nobody["failures"]) == {"unreachable.invalid"}
        for bad, errcode in (
            ({}, "M_MISSING_PARAM"),
            ({"device_keys": {alice.user_id: "x"}}, "M_BAD_JSON"),
            ({"device_keys": {alice.user_id: [1]}}, "M_BAD_JSON"),
            ({"device_keys": []}, "M_BAD_JSON"),
        ):
            status, body = await bob.call("POST", "/keys/query", bad)
            assert (status, body["errcode"]) == (400, errcode)


# -- device lists ------------------------------------------------------------------------------
async def test_device_list_changes_in_sync_and_keys_changes(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room_id = await shared_room(alice, bob)
        start = (await alice.sync())["next_batch"]

        await upload_device_keys(bob)
        sync = await alice.sync(start)
        assert bob.user_id in sync["device_lists"]["changed"]
        mid = sync["next_batch"]
        changes = await alice.ok("GET", f"/keys/changes?from={start}&to={mid}")
        assert bob.user_id in changes["changed"]
        assert changes["left"] == []

        await bob.leave(room_id)
        end = (await alice.sync(mid))["next_batch"]
        changes = await alice.ok("GET", f"/keys/changes?from={mid}&to={end}")
        assert changes["left"] == [bob.user_id]
        assert bob.user_id not in changes["changed"]

        # A user newly invited to one of alice's rooms is in `changed` (as Synapse;
        # SyTest 08-cross-signing waits for it before the invitee joins).
        carol = await new_user(api, "carol")
        await alice.invite(room_id, carol.user_id)
        sync = await alice.sync(end)
        assert carol.user_id in sync["device_lists"]["changed"]

        for path, errcode in (
            (f"/keys/changes?from={start}", "M_MISSING_PARAM"),
            (f"/keys/changes?from=garbage&to={end}", "M_INVALID_PARAM"),
        ):
            status, body = await alice.call("GET", path)
            assert (status, body["errcode"]) == (400, errcode)


async def test_deleted_device_loses_its_keys_and_is_announced(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        phone = await another_device(alice, "PHONE")
        bob = await new_user(api, "bob")
        await shared_room(alice, bob)
        await upload_device_keys(phone)
        await phone.ok("POST", "/keys/upload", {"one_time_keys": otks("P", 2)})
        since = (await bob.sync())["next_batch"]

        status, _ = await api.with_password_uia(
            "DELETE", "/devices/PHONE", alice.token, {}, "alice"
        )
        assert status == 200
        assert alice.user_id in (await bob.sync(since))["device_lists"]["changed"]
        queried = await bob.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        assert queried["device_keys"][alice.user_id] == {}
        claimed = await bob.ok(
            "POST",
            "/keys/claim",
            {"one_time_keys": {alice.user_id: {"PHONE": "signed_curve25519"}}},
        )
        assert claimed["one_time_keys"] == {}


# -- cross-signing -----------------------------------------------------------------------------
async def test_cross_signing_upload_and_replacement_needs_password(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        xs = cross_signing_set(alice.user_id)
        # First upload: no UIA (MSC3967); the same keys again: still none.
        await alice.ok("POST", "/keys/device_signing/upload", xs.body)
        await alice.ok("POST", "/keys/device_signing/upload", xs.body)
        # ...also under the pre-v1.1 /unstable prefix.
        status, _ = await api.call(
            "POST",
            "/keys/device_signing/upload",
            token=alice.token,
            json=xs.body,
            prefix="/_matrix/client/unstable",
        )
        assert status == 200

        own = await alice.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        assert (
            own["master_keys"][alice.user_id]["keys"] == xs.body["master_key"]["keys"]
        )
        assert alice.user_id in own["self_signing_keys"]
        assert alice.user_id in own["user_signing_keys"]
        other = await bob.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        assert alice.user_id in other["master_keys"]
        assert other["user_signing_keys"] == {}

        new = cross_signing_set(alice.user_id)
        status, _ = await api.with_password_uia(
            "POST", "/keys/device_signing/upload", alice.token, new.body, "alice"
        )
        assert status == 200
        own = await alice.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        assert (
            own["master_keys"][alice.user_id]["keys"] == new.body["master_key"]["keys"]
        )


async def test_cross_signing_upload_errors(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        xs = cross_signing_set(alice.user_id)
        stranger = new_key()
        unsigned_ssk = {**xs.body["self_signing_key"], "signatures": {}}
        cases = [
            ({"self_signing_key": xs.body["self_signing_key"]}, "M_MISSING_PARAM"),
            (
                {"master_key": xs.body["master_key"], "self_signing_key": unsigned_ssk},
                "M_INVALID_SIGNATURE",
            ),
            (
                {
                    "master_key": xs.body["master_key"],
                    "self_signing_key": stranger.sign(unsigned_ssk, alice.user_id),
                },
                "M_INVALID_SIGNATURE",
            ),
            (
                {"master_key": {**xs.body["master_key"], "usage": ["self_signing"]}},
                "M_INVALID_PARAM",
            ),
            (
                {"master_key": {**xs.body["master_key"], "user_id": "@bob:localhost"}},
                "M_INVALID_PARAM",
            ),
            (
                {"master_key": {**xs.body["master_key"], "keys": {"ed25519:x": "y"}}},
                "M_INVALID_PARAM",
            ),
            ({"master_key": "x"}, "M_BAD_JSON"),
        ]
        for body, errcode in cases:
            status, answer = await alice.call(
                "POST", "/keys/device_signing/upload", body
            )
            assert (status, answer["errcode"]) == (400, errcode), body


async def test_signatures_upload_own_devices_and_other_users(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        await shared_room(alice, bob)
        _, alice_keys = await upload_device_keys(alice)
        xa = cross_signing_set(alice.user_id)
        xb = cross_signing_set(bob.user_id)
        await alice.ok("POST", "/keys/device_signing/upload", xa.body)
        await bob.ok("POST", "/keys/device_signing/upload", xb.body)
        since = (await bob.sync())["next_batch"]

        signed_device = xa.self_signing.sign(alice_keys, alice.user_id)
        signed_bob_master = xa.user_signing.sign(xb.body["master_key"], alice.user_id)
        forged = new_key(xa.self_signing.public).sign(alice_keys, alice.user_id)
        result = await alice.ok(
            "POST",
            "/keys/signatures/upload",
            {
                alice.user_id: {
                    alice.device_id: signed_device,
                    "NODEVICE": signed_device,
                },
                bob.user_id: {xb.master.public: signed_bob_master},
            },
        )
        assert set(result["failures"].get(alice.user_id, {})) == {"NODEVICE"}
        assert result["failures"][alice.user_id]["NODEVICE"]["errcode"] == "M_NOT_FOUND"
        assert bob.user_id not in result["failures"]

        # Everyone sees the self-signing signature on Alice's device.
        seen = await bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
        sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"]
        assert xa.self_signing.key_id in sigs[alice.user_id]
        assert alice.user_id in (await bob.sync(since))["device_lists"]["changed"]
        # Only Alice sees her user-signing signature on Bob's master key.
        mine = await alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
        assert (
            xa.user_signing.key_id
            in mine["master_keys"][bob.user_id]["signatures"][alice.user_id]
        )
        theirs = await carol.ok(
            "POST", "/keys/query", {"device_keys": {bob.user_id: []}}
        )
        assert alice.user_id not in theirs["master_keys"][bob.user_id].get(
            "signatures", {}
        )

        bad = await alice.ok(
            "POST",
            "/keys/signatures/upload",
            {
                alice.user_id: {alice.device_id: forged},
                bob.user_id: {
                    "notamasterkey": signed_bob_master,
                    xb.master.public: {**signed_bob_master, "usage": ["other"]},
                },
                carol.user_id: {"x": "not an object"},
            },
        )
        failures = bad["failures"]
        assert (
            failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
        )
        assert failures[bob.user_id]["notamasterkey"]["errcode"] == "M_NOT_FOUND"
        assert failures[bob.user_id][xb.master.public]["errcode"] == "M_INVALID_PARAM"
        assert failures[carol.user_id]["x"]["errcode"] == "M_INVALID_PARAM"
        status, body = await alice.call(
            "POST", "/keys/signatures/upload", {alice.user_id: "x"}
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_devices_sign_their_own_master_key(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        device_key, _ = await upload_device_keys(alice)
        xa = cross_signing_set(alice.user_id)
        await alice.ok("POST", "/keys/device_signing/upload", xa.body)
        signed = device_key.sign(xa.body["master_key"], alice.user_id)
        result = await alice.ok(
            "POST",
            "/keys/signatures/upload",
            {alice.user_id: {xa.master.public: signed}},
        )
        assert result["failures"] == {}
        own = await alice.ok(
            "POST", "/keys/query", {"device_keys": {alice.user_id: []}}
        )
        master_sigs = own["master_keys"][alice.user_id]["signatures"][alice.user_id]
        assert device_key.key_id in master_sigs
        unsigned = await alice.ok(
            "POST",
            "/keys/signatures/upload",
            {alice.user_id: {xa.master.public: xa.body["master_key"]}},
        )
        errcode = unsigned["failures"][alice.user_id][xa.master.public]["errcode"]
        assert errcode == "M_INVALID_SIGNATURE"


async def test_user_signing_key_without_one_is_a_failure(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        xb = cross_signing_set(bob.user_id)
        await bob.ok("POST", "/keys/device_signing/upload", xb.body)
        result = await alice.ok(
            "POST",
            "/keys/signatures/upload",
            {bob.user_id: {xb.master.public: xb.body["master_key"]}},
        )
        errcode = result["failures"][bob.user_id][xb.master.public]["errcode"]
        assert errcode == "M_MISSING_PARAM"
