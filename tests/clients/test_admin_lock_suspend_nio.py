"""Account locking and suspension (spec v1.18 admin endpoints) seen by matrix-nio: a
locked account gets 401 M_USER_LOCKED (soft logout) on everything but logout; a
suspended one may read, sync and leave but not send, join or create rooms."""

from __future__ import annotations

from pathlib import Path

import nio

from tests.api.test_admin_users import OVERRIDES, admin_user
from tests.helpers.accounts import PASSWORD, accounts_server
from tests.helpers.rooms import make_user, q


def _nio(base_url: str, user: str) -> nio.AsyncClient:
    config = nio.AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
    return nio.AsyncClient(base_url, user, config=config)


async def test_lock_and_suspend_with_nio(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=OVERRIDES) as (
        hs,
        api,
    ):
        root = await admin_user(api)
        await make_user(api, "mallory")
        room = await root.create_room(preset="public_chat")
        client = _nio(hs.base_url, "@mallory:localhost")
        try:
            assert isinstance(await client.login(PASSWORD), nio.LoginResponse)
            assert isinstance(await client.join(room), nio.JoinResponse)
            target = q("@mallory:localhost")

            # Suspended: reads work, writes answer M_USER_SUSPENDED, leaving works.
            status, out = await root.call(
                "PUT",
                f"/admin/suspend/{target}",
                {"suspended": True},
                prefix="/_matrix/client/v1",
            )
            assert (status, out) == (200, {"suspended": True})
            status, out = await root.call(
                "GET", f"/admin/suspend/{target}", prefix="/_matrix/client/v1"
            )
            assert (status, out) == (200, {"suspended": True})
            assert isinstance(await client.sync(timeout=0), nio.SyncResponse)
            assert isinstance(await client.whoami(), nio.WhoamiResponse)
            sent = await client.room_send(
                room, "m.room.message", {"msgtype": "m.text", "body": "spam"}
            )
            assert isinstance(sent, nio.RoomSendError), sent
            assert sent.status_code == "M_USER_SUSPENDED"
            created = await client.room_create()
            assert isinstance(created, nio.RoomCreateError)
            assert created.status_code == "M_USER_SUSPENDED"
            assert isinstance(await client.room_leave(room), nio.RoomLeaveResponse)
            await root.call(
                "PUT", f"/admin/suspend/{target}", {"suspended": False},
                prefix="/_matrix/client/v1",
            )  # fmt: skip
            assert isinstance(await client.join(room), nio.JoinResponse)

            # Locked: every request is refused with a soft logout, except logout.
            status, out = await root.call(
                "PUT", f"/admin/lock/{target}", {"locked": True},
                prefix="/_matrix/client/v1",
            )  # fmt: skip
            assert (status, out) == (200, {"locked": True})
            token = client.access_token
            who = await client.whoami()
            assert isinstance(who, nio.WhoamiError), who
            assert who.status_code == "M_USER_LOCKED"
            status, out = await api.call("GET", "/account/whoami", token=token)
            assert (status, out["errcode"], out.get("soft_logout")) == (
                401,
                "M_USER_LOCKED",
                True,
            )
            status, out = await api.call("GET", "/sync?timeout=0", token=token)
            assert (status, out["errcode"]) == (401, "M_USER_LOCKED")
            # The admin view shows the flag; admins cannot be locked.
            status, out = await root.call(
                "GET", f"/_synapse/admin/v2/users/{target}", prefix=""
            )
            assert out["locked"] is True
            status, out = await root.call(
                "PUT", f"/admin/lock/{q(root.user_id)}", {"locked": True},
                prefix="/_matrix/client/v1",
            )  # fmt: skip
            assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
            for bad_target, code in (
                ("@x:elsewhere", "M_INVALID_PARAM"),
                ("@ghost:localhost", "M_NOT_FOUND"),
            ):
                status, out = await root.call(
                    "GET", f"/admin/lock/{q(bad_target)}", prefix="/_matrix/client/v1"
                )
                assert out["errcode"] == code
            status, out = await api.call("POST", "/logout", token=token, json={})
            assert (status, out) == (200, {})
        finally:
            await client.close()
