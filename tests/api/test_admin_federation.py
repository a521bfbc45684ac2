"""Synapse admin API, federation destinations, on both engines."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_admin_users import OVERRIDES, admin_user
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import make_user

BASE = "/_synapse/admin/v1/federation/destinations"


async def test_destinations(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        federation = hs.running.homeserver.federation
        assert federation is not None
        for name in ("b.example", "a.example"):
            await federation.retry.record_failure(name)

        status, out = await bob.call("GET", BASE, prefix="")
        assert status == 403
        status, out = await root.call("GET", f"{BASE}?limit=1", prefix="")
        assert status == 200, out
        assert out["total"] == 2
        assert out["next_token"] == "1"
        first = out["destinations"][0]
        assert first["destination"] == "a.example"
        assert first["retry_interval"] > 0
        assert first["failure_ts"] > 0
        status, out = await root.call("GET", f"{BASE}?dir=b", prefix="")
        assert [d["destination"] for d in out["destinations"]] == [
            "b.example",
            "a.example",
        ]
        status, out = await root.call("GET", f"{BASE}/a.example", prefix="")
        assert (status, out["destination"]) == (200, "a.example")
        status, out = await root.call("GET", f"{BASE}/nowhere.example", prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")

        path = f"{BASE}/a.example/reset_connection"
        assert await root.call("POST", path, {}, prefix="") == (200, {})
        assert not federation.retry.is_backing_off("a.example")
        status, out = await root.call("GET", BASE, prefix="")
        assert [d["destination"] for d in out["destinations"]] == ["b.example"]
        status, out = await root.call("POST", path, {}, prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
