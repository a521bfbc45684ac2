"""The OAuth store on SQLite and PostgreSQL: codes are redeemed once, refresh tokens
rotate and a reused one ends the session, sessions end with their access token, device
grants are single use, browser sessions expire."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import AccountsStore, NewUser, Registration
from ranvier.storage.stores.oauth import (
    AuthorizationRequestRow,
    DeviceGrantRow,
    NewSession,
    OAuthStore,
    RefreshStatus,
)

NOW = 1_700_000_000_000
USER = "@alice:example.org"


async def _user(database: Database) -> None:
    await AccountsStore(database).register_user(
        Registration(user=NewUser(USER, "hash", False, False, (), NOW), login=None)
    )


def _session(
    session_id: str = "s1", access: str = "a1", refresh: str = "r1"
) -> NewSession:
    return NewSession(
        session_id=session_id,
        client_id="c1",
        user_id=USER,
        device_id="DEV",
        scope="urn:matrix:client:api:* urn:matrix:client:device:DEV",
        access_token_hash=access,
        access_expires_ts=NOW + 300_000,
        refresh_token_hash=refresh,
        client_ip="127.0.0.1",
        now=NOW,
        device_display_name="App",
    )


async def test_code_is_redeemed_once(database: Database) -> None:
    store = OAuthStore(database)
    row = AuthorizationRequestRow(
        request_id="req", client_id="c1", redirect_uri="http://127.0.0.1/cb",
        scope="urn:matrix:client:api:*", state="s", nonce=None, response_mode="query",
        code_challenge="x" * 43, prompt=None, created_ts=NOW, expires_ts=NOW + 1000,
    )  # fmt: skip
    await store.create_authorization_request(row)
    assert (await store.get_authorization_request("req", NOW)) == row
    assert await store.get_authorization_request("req", NOW + 1000) is None
    assert await store.set_authorization_code("req", USER, "code", NOW + 500)
    assert not await store.set_authorization_code("req", USER, "code2", NOW + 500)
    first = await store.redeem_code("code", "sess-1")
    assert first is not None
    assert (first.user_id, first.exchanged_session_id) == (USER, None)
    again = await store.redeem_code("code", "sess-2")
    assert again is not None
    assert again.exchanged_session_id == "sess-1"
    assert await store.redeem_code("nope", "sess-3") is None


async def test_refresh_rotation_and_reuse(database: Database) -> None:
    await _user(database)
    store = OAuthStore(database)
    accounts = AccountsStore(database)
    assert await store.create_session(_session()) == []
    assert (await accounts.get_device(USER, "DEV")) is not None
    assert (await accounts.get_access_token("a1")) is not None
    out = await store.refresh("r1", "other", "a2", NOW + 1, "r2", NOW)
    assert out.status is RefreshStatus.WRONG_CLIENT
    out = await store.refresh("r1", "c1", "a2", NOW + 300_000, "r2", NOW)
    assert out.status is RefreshStatus.OK
    assert await accounts.get_access_token("a1") is None
    assert await accounts.get_access_token("a2") is not None
    # The rotated-away token again: the session ends.
    out = await store.refresh("r1", "c1", "a3", NOW + 300_000, "r3", NOW)
    assert out.status is RefreshStatus.REUSED
    assert out.session is not None
    assert out.session.device_id == "DEV"
    assert await accounts.get_access_token("a2") is None
    out = await store.refresh("r2", "c1", "a4", NOW + 300_000, "r4", NOW)
    assert out.status is RefreshStatus.UNKNOWN


async def test_session_ends_with_its_access_token(database: Database) -> None:
    await _user(database)
    store = OAuthStore(database)
    await store.create_session(_session())
    found = await store.find_session_by_token("a1")
    assert found is not None
    assert found.session_id == "s1"
    assert (await store.find_session_by_token("r1")) == found
    # /logout deletes the device and its tokens through the accounts store.
    await AccountsStore(database).delete_devices(USER, ["DEV"])
    out = await store.refresh("r1", "c1", "a2", NOW + 1, "r2", NOW)
    assert out.status is RefreshStatus.ENDED
    assert await store.get_session("s1") is None
    # A new session on the same device replaces the old one's tokens.
    await store.create_session(_session("s2", "b1", "q1"))
    assert await store.create_session(_session("s3", "b2", "q2")) == ["s2"]
    assert await AccountsStore(database).get_access_token("b1") is None
    ended = await store.end_session("s3")
    assert ended is not None
    assert await AccountsStore(database).get_access_token("b2") is None
    assert await store.end_session("s3") is None


async def test_device_grant_and_browser_sessions(database: Database) -> None:
    await _user(database)
    store = OAuthStore(database)
    grant = DeviceGrantRow("BCDFGHJK", "c1", "urn:matrix:client:api:*", "pending",
                           None, None, NOW, NOW + 600_000)  # fmt: skip
    assert await store.create_device_grant("dc", grant)
    assert not await store.create_device_grant("dc2", grant)
    assert (await store.get_device_grant("BCDFGHJK", NOW)) == grant
    polled = await store.poll_device_grant("dc", NOW)
    assert polled is not None
    assert polled.status == "pending"
    assert await store.decide_device_grant("BCDFGHJK", USER, True, NOW)
    assert not await store.decide_device_grant("BCDFGHJK", USER, False, NOW)
    approved = await store.poll_device_grant("dc", NOW + 1)
    assert approved is not None
    assert (approved.status, approved.user_id) == ("approved", USER)
    again = await store.poll_device_grant("dc", NOW + 2)
    assert again is not None
    assert again.status == "exchanged"

    await store.create_browser_session("bs", USER, NOW, NOW + 10)
    assert await store.get_browser_session("bs", NOW) == USER
    assert await store.get_browser_session("bs", NOW + 10) is None
    await store.delete_browser_session("bs")
    assert await store.get_browser_session("bs", NOW) is None


async def test_cross_signing_reset_and_signing_key(database: Database) -> None:
    await _user(database)
    store = OAuthStore(database)
    await store.create_session(_session())
    token = await AccountsStore(database).get_access_token("a1")
    assert token is not None
    assert await store.is_oauth_access_token(token.token_id)
    assert not await store.is_oauth_access_token(token.token_id + 1000)
    assert not await store.consume_cross_signing_reset(USER, NOW)
    await store.approve_cross_signing_reset(USER, NOW + 10)
    assert not await store.consume_cross_signing_reset(USER, NOW + 10)
    await store.approve_cross_signing_reset(USER, NOW + 10)
    assert await store.consume_cross_signing_reset(USER, NOW)
    assert not await store.consume_cross_signing_reset(USER, NOW)
    assert await store.get_or_create_signing_key("k1", "{}", NOW) == ("k1", "{}")
    assert await store.get_or_create_signing_key("k2", "[]", NOW) == ("k1", "{}")
