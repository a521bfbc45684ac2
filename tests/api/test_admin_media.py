"""Synapse admin API, media, on both engines: query, quarantine, per-user listing and
statistics, deletion by ID and by date/size, remote cache purge."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_admin_users import OVERRIDES, admin_user
from tests.helpers.accounts import accounts_server
from tests.helpers.media import V1_MEDIA, mxc_path, request, upload
from tests.helpers.rooms import User, make_user, q
from tests.helpers.sync import User as MediaUser

V1 = "/_synapse/admin/v1"


def _media_user(user: User) -> MediaUser:
    return MediaUser(user.api, user.user_id, user.token, user.device_id)


async def test_media_admin(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        _hs,
        api,
    ):
        root = await admin_user(api)
        bob = await make_user(api, "bob")
        small = mxc_path(
            await upload(_media_user(bob), b"x" * 10, "text/plain", "a.txt")
        )
        big = mxc_path(
            await upload(_media_user(bob), b"y" * 5000, "text/plain", "b.txt")
        )
        shared = mxc_path(
            await upload(_media_user(root), b"y" * 5000, "text/plain", "c.txt")
        )
        small_id, big_id = small.split("/")[1], big.split("/")[1]

        status, out = await bob.call("GET", f"{V1}/media/{small}", prefix="")
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await root.call("GET", f"{V1}/media/{small}", prefix="")
        assert status == 200, out
        info = out["media_info"]
        assert info["media_id"] == small_id
        assert info["user_id"] == bob.user_id
        assert info["media_length"] == 10
        assert info["media_type"] == "text/plain"
        assert info["upload_name"] == "a.txt"
        status, out = await root.call("GET", f"{V1}/media/localhost/nope", prefix="")
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")

        # Quarantined media is no longer served.
        status, out = await root.call(
            "POST", f"{V1}/media/quarantine/{small}", {}, prefix=""
        )
        assert (status, out) == (200, {})
        got = await request(_media_user(bob), "GET", f"{V1_MEDIA}/download/{small}")
        assert got.status == 404
        status, out = await root.call("GET", f"{V1}/media/{small}", prefix="")
        assert out["media_info"]["quarantined_by"] is not None
        await root.call("POST", f"{V1}/media/unquarantine/{small}", {}, prefix="")
        got = await request(_media_user(bob), "GET", f"{V1_MEDIA}/download/{small}")
        assert got.status == 200

        # Per-user listing and statistics.
        status, out = await root.call(
            "GET", f"{V1}/users/{q(bob.user_id)}/media?limit=1", prefix=""
        )
        assert status == 200, out
        assert out["total"] == 2
        assert out["next_token"] == 1
        assert out["media"][0]["media_id"] == small_id
        status, out = await root.call("GET", f"{V1}/statistics/users/media", prefix="")
        stats = {u["user_id"]: u for u in out["users"]}
        assert stats[bob.user_id]["media_count"] == 2
        assert stats[bob.user_id]["media_length"] == 5010
        assert stats[bob.user_id]["displayname"] == "bob"
        assert out["total"] == 2

        # Delete by date and size: only media over 1000 bytes, before now.
        status, out = await root.call("POST", f"{V1}/media/delete", {}, prefix="")
        assert (status, out["errcode"]) == (400, "M_MISSING_PARAM")
        status, out = await root.call(
            "POST",
            f"{V1}/media/delete?before_ts=99999999999999&size_gt=1000",
            {},
            prefix="",
        )
        assert status == 200, out
        assert sorted(out["deleted_media"]) == sorted([big_id, shared.split("/")[1]])
        assert out["total"] == 2
        got = await request(_media_user(bob), "GET", f"{V1_MEDIA}/download/{big}")
        assert got.status == 404

        # Delete by ID.
        status, out = await root.call("DELETE", f"{V1}/media/{small}", prefix="")
        assert (status, out) == (200, {"deleted_media": [small_id], "total": 1})
        status, out = await root.call("DELETE", f"{V1}/media/{small}", prefix="")
        assert status == 404
        status, out = await root.call(
            "DELETE", f"{V1}/media/elsewhere.example/abc", prefix=""
        )
        assert status == 400

        status, out = await root.call(
            "POST", f"{V1}/purge_media_cache?before_ts=99999999999999", {}, prefix=""
        )
        assert (status, out) == (200, {"deleted": 0})
