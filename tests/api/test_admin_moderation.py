"""Synapse admin API: event reports and registration tokens, on both engines."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_admin_users import OVERRIDES, admin_user
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import make_user, q

V1 = "/_synapse/admin/v1"


async def test_event_reports(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        room = await root.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        events = [await root.send(room, f"bad {i}") for i in range(3)]
        for i, event in enumerate(events):
            status, _ = await bob.call(
                "POST", f"/rooms/{q(room)}/report/{q(event)}", {"reason": f"r{i}"}
            )
            assert status == 200
        # A room report is not an event report.
        await bob.call("POST", f"/rooms/{q(room)}/report", {"reason": "room"})

        status, out = await bob.call("GET", f"{V1}/event_reports", prefix="")
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await root.call("GET", f"{V1}/event_reports?limit=2", prefix="")
        assert status == 200, out
        assert out["total"] == 3
        assert out["next_token"] == 2
        # Newest first by default.
        assert [r["reason"] for r in out["event_reports"]] == ["r2", "r1"]
        first = out["event_reports"][0]
        assert first["user_id"] == bob.user_id
        assert first["sender"] == root.user_id
        assert first["room_id"] == room
        status, out = await root.call(
            "GET", f"{V1}/event_reports?dir=f&from=2", prefix=""
        )
        assert [r["reason"] for r in out["event_reports"]] == ["r2"]
        assert "next_token" not in out
        status, out = await root.call(
            "GET", f"{V1}/event_reports?user_id=nobody", prefix=""
        )
        assert out["total"] == 0

        path = f"{V1}/event_reports/{q(first['id'])}"
        status, out = await root.call("GET", path, prefix="")
        assert status == 200
        assert out["event_json"]["content"]["body"] == "bad 2"
        assert (await root.call("DELETE", path, prefix="")) == (200, {})
        status, out = await root.call("GET", path, prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        status, out = await root.call("DELETE", path, prefix="")
        assert status == 404


async def test_registration_tokens(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        base = f"{V1}/registration_tokens"
        status, out = await bob.call("GET", base, prefix="")
        assert status == 403
        status, out = await root.call(
            "POST", f"{base}/new", {"token": "abc", "uses_allowed": 2}, prefix=""
        )
        assert (status, out) == (
            200,
            {
                "token": "abc",
                "uses_allowed": 2,
                "pending": 0,
                "completed": 0,
                "expiry_time": None,
            },
        )
        status, out = await root.call("POST", f"{base}/new", {}, prefix="")
        assert status == 200
        generated = out["token"]
        assert len(generated) > 0
        status, out = await root.call(
            "POST", f"{base}/new", {"token": "abc"}, prefix=""
        )
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
        status, out = await root.call(
            "POST", f"{base}/new", {"expiry_time": 1}, prefix=""
        )
        assert (status, out["errcode"]) == (400, "M_INVALID_PARAM")
        status, out = await root.call("GET", base, prefix="")
        assert sorted(t["token"] for t in out["registration_tokens"]) == sorted(
            ["abc", generated]
        )
        status, out = await root.call("GET", f"{base}?valid=false", prefix="")
        assert out["registration_tokens"] == []
        status, out = await root.call("GET", f"{base}/abc", prefix="")
        assert (status, out["uses_allowed"]) == (200, 2)
        status, out = await root.call(
            "PUT", f"{base}/abc", {"uses_allowed": None, "expiry_time": 99999999999999},
            prefix="",
        )  # fmt: skip
        assert (status, out["uses_allowed"], out["expiry_time"]) == (
            200,
            None,
            99999999999999,
        )
        status, out = await root.call(
            "PUT", f"{base}/abc", {"uses_allowed": 5}, prefix=""
        )
        assert (out["uses_allowed"], out["expiry_time"]) == (5, 99999999999999)
        status, out = await root.call("PUT", f"{base}/nope", {}, prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        assert (await root.call("DELETE", f"{base}/abc", prefix="")) == (200, {})
        status, out = await root.call("GET", f"{base}/abc", prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
