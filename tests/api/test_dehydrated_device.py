"""Dehydrated devices (MSC3814 unstable endpoints) through the client API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.e2e import device_keys, otks
from tests.helpers.sync import User, new_user

PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DATA = {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "opaque"}


async def call(user: User, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await user.api.call(method, path, token=user.token, json=body, prefix=PREFIX)


async def dehydrate(user: User, device_id: str) -> tuple[int, Any]:
    _, keys = device_keys(user.user_id, device_id)
    return await call(
        user,
        "PUT",
        "/dehydrated_device",
        {
            "device_id": device_id,
            "device_data": DATA,
            "initial_device_display_name": "Dehydrated",
            "device_keys": keys,
            "one_time_keys": otks("D", 2),
            "fallback_keys": {"signed_curve25519:F": {"key": "f"}},
        },
    )


async def test_dehydrated_device_lifecycle(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        status, body = await call(alice, "GET", "/dehydrated_device")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        assert await dehydrate(alice, "DEHYD") == (200, {"device_id": "DEHYD"})
        assert await call(alice, "GET", "/dehydrated_device") == (
            200,
            {"device_id": "DEHYD", "device_data": DATA},
        )
        device = await alice.ok("GET", "/devices/DEHYD")
        assert device["display_name"] == "Dehydrated"
        keys = await bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
        assert "DEHYD" in keys["device_keys"][alice.user_id]
        claimed = await bob.ok(
            "POST",
            "/keys/claim",
            {"one_time_keys": {alice.user_id: {"DEHYD": "signed_curve25519"}}},
        )
        assert "DEHYD" in claimed["one_time_keys"][alice.user_id]

        # Messages sent to it while no device is online wait in its inbox.
        await bob.ok(
            "PUT",
            "/sendToDevice/m.room.encrypted/t1",
            {"messages": {alice.user_id: {"DEHYD": {"ciphertext": "secret"}}}},
        )
        status, first = await call(alice, "POST", "/dehydrated_device/DEHYD/events", {})
        assert status == 200, first
        assert [e["content"] for e in first["events"]] == [{"ciphertext": "secret"}]
        assert first["events"][0]["sender"] == bob.user_id
        status, second = await call(
            alice,
            "POST",
            "/dehydrated_device/DEHYD/events",
            {"next_batch": first["next_batch"]},
        )
        assert (status, second["events"]) == (200, [])

        # A new dehydrated device replaces (deletes) the old one.
        assert await dehydrate(alice, "DEHYD2") == (200, {"device_id": "DEHYD2"})
        status, _ = await alice.call("GET", "/devices/DEHYD")
        assert status == 404
        keys = await bob.ok("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
        assert set(keys["device_keys"][alice.user_id]) == {"DEHYD2"}

        assert await call(alice, "DELETE", "/dehydrated_device") == (
            200,
            {"device_id": "DEHYD2"},
        )
        status, _ = await alice.call("GET", "/devices/DEHYD2")
        assert status == 404
        for method in ("GET", "DELETE"):
            status, body = await call(alice, method, "/dehydrated_device")
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_dehydrated_device_errors(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await new_user(api, "alice")
        # An ordinary device cannot become a dehydrated one.
        status, body = await dehydrate(alice, alice.device_id)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

        _, keys = device_keys(alice.user_id, "OTHER")
        for bad, errcode in (
            (
                {"device_id": "D", "device_data": DATA, "device_keys": keys},
                "M_INVALID_PARAM",
            ),
            ({"device_id": "D", "device_keys": keys}, "M_MISSING_PARAM"),
            ({"device_id": "D", "device_data": DATA}, "M_MISSING_PARAM"),
            ({"device_data": DATA, "device_keys": keys}, "M_MISSING_PARAM"),
            ({"device_id": "D", "device_data": "x", "device_keys": keys}, "M_BAD_JSON"),
            (
                {
                    "device_id": "OTHER",
                    "device_data": DATA,
                    "device_keys": {**keys, "algorithms": ["tampered"]},
                },
                "M_INVALID_SIGNATURE",
            ),
        ):
            status, body = await call(alice, "PUT", "/dehydrated_device", bad)
            assert (status, body["errcode"]) == (400, errcode), bad
        status, _ = await alice.call("GET", "/devices/OTHER")
        assert status == 404  # nothing was created by the failed attempts

        assert (await dehydrate(alice, "DEHYD"))[0] == 200
        status, body = await call(
            alice, "POST", f"/dehydrated_device/{alice.device_id}/events", {}
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await call(
            alice, "POST", "/dehydrated_device/DEHYD/events", {"next_batch": "x"}
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        # Re-uploading the same dehydrated device is fine.
        assert (await dehydrate(alice, "DEHYD"))[0] == 200
