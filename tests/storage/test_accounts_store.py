"""Accounts, registration and profile stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import (
    AccountsStore,
    NewLogin,
    NewUser,
    RefreshStatus,
    Registration,
    UserIdInUseError,
)
from ranvier.storage.stores.profiles import ProfileStore
from ranvier.storage.stores.registration import RegistrationStore, UiaSessionRow

NOW = 1_700_000_000_000


def new_user(
    user_id: str, *, guest: bool = False, profile: tuple[tuple[str, str], ...] = ()
) -> NewUser:
    return NewUser(
        user_id=user_id,
        password_hash=None if guest else "hash",
        is_guest=guest,
        is_admin=False,
        profile=profile,
        created_ts=NOW,
    )


def new_login(
    user_id: str,
    device_id: str,
    access: str,
    refresh: str | None = None,
    *,
    expires: int | None = None,
    name: str | None = None,
) -> NewLogin:
    return NewLogin(
        user_id=user_id,
        device_id=device_id,
        initial_display_name=name,
        access_token_hash=access,
        access_expires_ts=expires,
        refresh_token_hash=refresh,
        refresh_expires_ts=None,
        client_ip="10.0.0.1",
        now=NOW,
    )


def session_row(session_id: str, user_id: str | None = None) -> UiaSessionRow:
    return UiaSessionRow(
        session_id=session_id,
        uri="/_matrix/client/v3/register",
        method="POST",
        user_id=user_id,
        completed={},
        data={"k": "v"},
        registration_token=None,
        created_ts=NOW,
    )


async def test_users_register_and_conflicts(database: Database) -> None:
    store = AccountsStore(database)
    token_id = await store.register_user(
        Registration(
            user=new_user("@a:hs", profile=(("displayname", '"a"'),)),
            login=new_login("@a:hs", "DEV", "h1", name="Phone"),
        )
    )
    assert token_id is not None
    user = await store.get_user("@a:hs")
    assert user is not None
    assert (user.password_hash, user.is_guest, user.is_admin, user.deactivated) == (
        "hash", False, False, False,
    )  # fmt: skip
    assert await store.get_user("@nobody:hs") is None
    with pytest.raises(UserIdInUseError):
        await store.register_user(Registration(user=new_user("@a:hs"), login=None))
    # Not a guest: cannot be "upgraded".
    with pytest.raises(UserIdInUseError):
        await store.register_user(
            Registration(user=new_user("@a:hs"), login=None, upgrade_guest=True)
        )
    assert await ProfileStore(database).get_profile("@a:hs") == {"displayname": "a"}
    device = await store.get_device("@a:hs", "DEV")
    assert device is not None
    assert (device.display_name, device.last_seen_ip, device.last_seen_ts) == (
        "Phone", "10.0.0.1", NOW,
    )  # fmt: skip
    assert await store.set_admin("@a:hs", True)
    assert (await store.get_user("@a:hs")).is_admin  # type: ignore[union-attr]
    assert await store.get_local_user_ids() == ["@a:hs"]


async def test_guest_upgrade_keeps_tokens(database: Database) -> None:
    store = AccountsStore(database)
    await store.register_user(
        Registration(
            user=new_user("@1:hs", guest=True), login=new_login("@1:hs", "G", "g")
        )
    )
    row = await store.get_access_token("g")
    assert row is not None
    assert row.is_guest
    await store.register_user(
        Registration(user=new_user("@1:hs"), login=None, upgrade_guest=True)
    )
    row = await store.get_access_token("g")
    assert row is not None
    assert not row.is_guest
    user = await store.get_user("@1:hs")
    assert user is not None
    assert user.password_hash == "hash"


async def test_access_tokens_devices_and_logout(database: Database) -> None:
    store = AccountsStore(database)
    await store.register_user(Registration(user=new_user("@b:hs"), login=None))
    t1 = await store.create_login(new_login("@b:hs", "D1", "h1"))
    t2 = await store.create_login(new_login("@b:hs", "D2", "h2"))
    # A second login on an existing device keeps its name and adds a token.
    t3 = await store.create_login(new_login("@b:hs", "D2", "h3", name="ignored"))
    assert len({t1, t2, t3}) == 3
    row = await store.get_access_token("h1")
    assert row is not None
    assert (row.token_id, row.user_id, row.device_id, row.is_guest, row.expires_ts) == (
        t1, "@b:hs", "D1", False, None,
    )  # fmt: skip
    assert [d.device_id for d in await store.get_devices("@b:hs")] == ["D1", "D2"]
    assert (await store.get_device("@b:hs", "D2")).display_name is None  # type: ignore[union-attr]

    assert await store.set_device_display_name("@b:hs", "D1", "Laptop")
    assert not await store.set_device_display_name("@b:hs", "NOPE", "x")
    await store.update_device_last_seen("@b:hs", "D1", None, NOW + 5)
    d1 = await store.get_device("@b:hs", "D1")
    assert d1 is not None
    assert (d1.display_name, d1.last_seen_ip, d1.last_seen_ts) == (
        "Laptop",
        "10.0.0.1",
        NOW + 5,
    )

    assert await store.delete_devices("@b:hs", ["D2", "MISSING"]) == ["D2"]
    assert await store.get_access_token("h2") is None
    assert await store.get_access_token("h3") is None
    assert await store.get_access_token("h1") is not None
    assert await store.delete_devices("@b:hs", []) == []


async def test_delete_other_logins_and_deactivate(database: Database) -> None:
    store = AccountsStore(database)
    await store.register_user(Registration(user=new_user("@c:hs"), login=None))
    keep = await store.create_login(new_login("@c:hs", "KEEP", "k1", "kr1"))
    await store.create_login(new_login("@c:hs", "KEEP", "k2"))
    await store.create_login(new_login("@c:hs", "OTHER", "o1", "or1"))
    deleted = await store.delete_other_logins("@c:hs", "KEEP", keep)
    assert deleted == ["OTHER"]
    assert await store.get_access_token("k1") is not None
    assert await store.get_access_token("k2") is None
    assert await store.get_access_token("o1") is None
    # The kept token's refresh token survives; the other device's does not.
    result = await store.refresh_login("or1", "x", "y", None, None, NOW)
    assert result.status is RefreshStatus.UNKNOWN
    result = await store.refresh_login("kr1", "k3", "kr2", NOW + 10, None, NOW)
    assert result.status is RefreshStatus.OK

    await store.create_login_token("lt", "@c:hs", NOW + 1000)
    assert await store.deactivate_user("@c:hs") == ["KEEP"]
    user = await store.get_user("@c:hs")
    assert user is not None
    assert user.deactivated
    assert user.password_hash is None
    assert await store.get_devices("@c:hs") == []
    assert await store.get_access_token("k3") is None
    assert await store.consume_login_token("lt", NOW) is None
    assert await store.get_local_user_ids() == []
    assert await store.get_local_user_ids(include_deactivated=True) == ["@c:hs"]


async def test_refresh_rotation(database: Database) -> None:
    store = AccountsStore(database)
    await store.register_user(Registration(user=new_user("@d:hs"), login=None))
    await store.create_login(new_login("@d:hs", "D", "a1", "r1", expires=NOW + 100))
    row = await store.get_access_token("a1")
    assert row is not None
    assert row.refresh_token_id is not None
    assert not row.used
    assert row.expires_ts == NOW + 100

    ok = await store.refresh_login("r1", "a2", "r2", NOW + 200, None, NOW)
    assert (ok.status, ok.user_id, ok.device_id) == (RefreshStatus.OK, "@d:hs", "D")
    assert await store.get_access_token("a1") is None
    a2 = await store.get_access_token("a2")
    assert a2 is not None
    assert a2.token_id == ok.access_token_id
    # Until a2 is used, r1 may be replayed (it replaces the unused a2/r2).
    again = await store.refresh_login("r1", "a3", "r3", NOW + 200, None, NOW)
    assert again.status is RefreshStatus.OK
    assert await store.get_access_token("a2") is None
    assert (
        await store.refresh_login("r2", "x", "y", None, None, NOW)
    ).status is RefreshStatus.UNKNOWN
    a3 = await store.get_access_token("a3")
    assert a3 is not None
    await store.mark_access_token_used(a3.token_id, a3.refresh_token_id)
    a3 = await store.get_access_token("a3")
    assert a3 is not None
    assert a3.used
    assert (
        await store.refresh_login("r1", "x", "y", None, None, NOW)
    ).status is RefreshStatus.UNKNOWN
    # Using r3 itself also retires nothing more and works.
    assert (
        await store.refresh_login("r3", "a4", "r4", None, None, NOW)
    ).status is RefreshStatus.OK


async def test_expired_refresh_token(database: Database) -> None:
    store = AccountsStore(database)
    await store.register_user(Registration(user=new_user("@e:hs"), login=None))
    await store.create_login(
        NewLogin(
            user_id="@e:hs",
            device_id="D",
            initial_display_name=None,
            access_token_hash="a1",
            access_expires_ts=NOW + 10,
            refresh_token_hash="r1",
            refresh_expires_ts=NOW + 50,
            client_ip=None,
            now=NOW,
        )
    )
    result = await store.refresh_login("r1", "a2", "r2", None, None, NOW + 50)
    assert result.status is RefreshStatus.EXPIRED
    assert await store.get_access_token("a1") is None
    assert (
        await store.refresh_login("r1", "a2", "r2", None, None, NOW)
    ).status is RefreshStatus.UNKNOWN


async def test_login_tokens_single_use_and_expiry(database: Database) -> None:
    store = AccountsStore(database)
    await store.create_login_token("t1", "@f:hs", NOW + 100)
    await store.create_login_token("t2", "@f:hs", NOW + 100)
    assert await store.consume_login_token("t1", NOW) == "@f:hs"
    assert await store.consume_login_token("t1", NOW) is None
    assert await store.consume_login_token("t2", NOW + 100) is None
    assert await store.consume_login_token("unknown", NOW) is None


async def test_registration_tokens_pending_completed_release(
    database: Database,
) -> None:
    tokens = RegistrationStore(database)
    accounts = AccountsStore(database)
    assert await tokens.create_registration_token("once", 1, None, NOW)
    assert not await tokens.create_registration_token("once", 5, None, NOW)
    assert await tokens.create_registration_token("old", None, NOW + 10, NOW)
    assert [t.token for t in await tokens.get_registration_tokens()] == ["old", "once"]

    await tokens.create_uia_session(session_row("s1"))
    await tokens.create_uia_session(session_row("s2"))
    assert await tokens.claim_registration_token("s1", "once", NOW)
    assert await tokens.claim_registration_token("s1", "once", NOW)  # idempotent
    row = await tokens.get_registration_token("once")
    assert row is not None
    assert (row.pending, row.completed) == (1, 0)
    assert not row.is_valid(NOW)
    # The only use is pending in s1: s2 cannot take it.
    assert not await tokens.claim_registration_token("s2", "once", NOW)
    # Expired and unknown tokens, unknown sessions.
    assert not await tokens.claim_registration_token("s2", "old", NOW + 10)
    assert not await tokens.claim_registration_token("s2", "nope", NOW)
    assert not await tokens.claim_registration_token("nosession", "old", NOW)

    # Deleting (or expiring) the session releases the pending use.
    await tokens.delete_uia_session("s1")
    row = await tokens.get_registration_token("once")
    assert row is not None
    assert (row.pending, row.completed) == (0, 0)
    assert await tokens.claim_registration_token("s2", "once", NOW)
    # Registering turns it into a completed use and deletes the session.
    await accounts.register_user(
        Registration(
            user=new_user("@g:hs"),
            login=None,
            registration_token="once",
            uia_session_id="s2",
        )
    )
    row = await tokens.get_registration_token("once")
    assert row is not None
    assert (row.pending, row.completed) == (0, 1)
    assert await tokens.get_uia_session("s2") is None

    await tokens.create_uia_session(session_row("s3"))
    assert await tokens.claim_registration_token("s3", "old", NOW)
    assert await tokens.delete_expired_uia_sessions(NOW + 1) == 1
    row = await tokens.get_registration_token("old")
    assert row is not None
    assert row.pending == 0
    assert await tokens.delete_registration_token("old")
    assert not await tokens.delete_registration_token("old")


async def test_uia_sessions_roundtrip(database: Database) -> None:
    store = RegistrationStore(database)
    await store.create_uia_session(session_row("s", "@u:hs"))
    row = await store.get_uia_session("s")
    assert row is not None
    assert (row.uri, row.method, row.user_id, row.completed, row.data) == (
        "/_matrix/client/v3/register", "POST", "@u:hs", {}, {"k": "v"},
    )  # fmt: skip
    await store.update_uia_session("s", {"m.login.dummy": True}, {"k": "w"})
    row = await store.get_uia_session("s")
    assert row is not None
    assert row.completed == {"m.login.dummy": True}
    assert row.data == {"k": "w"}
    assert await store.get_uia_session("missing") is None
    await store.delete_uia_session("s")
    assert await store.get_uia_session("s") is None


async def test_profiles(database: Database) -> None:
    store = ProfileStore(database)
    await store.set_profile_field("@p:hs", "displayname", "Pat")
    await store.set_profile_field("@p:hs", "avatar_url", "mxc://hs/abc")
    await store.set_profile_field(
        "@p:hs", "org.example.data", {"nested": [1, None, "x%?"]}
    )
    await store.set_profile_field("@q:hs", "displayname", "Quinn")
    await store.set_profile_field("@p:hs", "displayname", "Patricia")
    assert await store.get_profile("@p:hs") == {
        "avatar_url": "mxc://hs/abc",
        "displayname": "Patricia",
        "org.example.data": {"nested": [1, None, "x%?"]},
    }
    assert await store.get_profiles(["@p:hs", "@q:hs", "@r:hs"], ["displayname"]) == {
        "@p:hs": {"displayname": "Patricia"},
        "@q:hs": {"displayname": "Quinn"},
    }
    assert await store.get_profiles([]) == {}
    assert await store.get_profiles(["@p:hs"], []) == {}
    assert await store.delete_profile_field("@p:hs", "avatar_url")
    assert not await store.delete_profile_field("@p:hs", "avatar_url")
    await store.delete_profile("@p:hs")
    assert await store.get_profile("@p:hs") == {}
    assert await store.get_profile("@q:hs") == {"displayname": "Quinn"}
