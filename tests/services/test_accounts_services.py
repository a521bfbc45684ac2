"""Account services on a real (SQLite) store: the token cache, last-seen throttling, hooks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from ranvier.config.schema import RegistrationConfig
from ranvier.core.errors import MatrixError
from ranvier.services.accounts.devices import DeviceService
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.accounts.identifiers import check_new_localpart, hash_token
from ranvier.services.accounts.passwords import PasswordHasher
from ranvier.services.accounts.profiles import ProfileService
from ranvier.services.accounts.registration import (
    RegisterRequest,
    RegistrationService,
)
from ranvier.services.accounts.sessions import SessionService, TokenPolicy
from ranvier.services.accounts.uia import (
    DummyStage,
    UiaRequest,
    UiaRequiredError,
    UserInteractiveAuth,
)
from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import AccessTokenRow, AccountsStore
from ranvier.storage.stores.profiles import ProfileStore
from ranvier.storage.stores.registration import RegistrationStore
from ranvier.storage.txn import EngineName
from ranvier.util.clock import FakeClock

SERVER = "hs.test"


@pytest.fixture
def db_engine() -> EngineName:
    return "sqlite"


class CountingStore(AccountsStore):
    """The real store, counting token lookups and last-seen writes; lookups can be held."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.lookups = 0
        self.last_seen: list[tuple[str, str | None, int]] = []
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def get_access_token(self, token_hash: str) -> AccessTokenRow | None:
        self.lookups += 1
        row = await super().get_access_token(token_hash)
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        return row

    async def update_device_last_seen(
        self, user_id: str, device_id: str, ip: str | None, ts: int
    ) -> None:
        self.last_seen.append((device_id, ip, ts))
        await super().update_device_last_seen(user_id, device_id, ip, ts)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    async def on_deactivate(self, user_id: str, erase: bool) -> None:
        self.events.append(("deactivate", (user_id, erase)))

    async def on_profile_change(self, user_id: str) -> None:
        self.events.append(("profile", user_id))

    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        self.events.append(("devices", (user_id, tuple(device_ids))))


class Broken:
    async def on_profile_change(self, user_id: str) -> None:
        raise RuntimeError("listener bug")


class CountingHasher(PasswordHasher):
    def __init__(self, **kw: int) -> None:
        super().__init__(**kw)
        self.hashes = 0

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return await super().hash(password)


class Services:
    def __init__(self, db: Database) -> None:
        self.clock = FakeClock()
        self.store = CountingStore(db)
        self.hooks = AccountHooks()
        hasher = CountingHasher(time_cost=1, memory_cost_kib=64, parallelism=1)
        self.hasher = hasher
        self.sessions = SessionService(
            self.store, self.clock, TokenPolicy(cache_size=2)
        )
        reg_store = RegistrationStore(db)
        self.reg_store = reg_store
        uia = UserInteractiveAuth(
            reg_store, self.clock, {"m.login.dummy": DummyStage()}
        )
        self.registration = RegistrationService(
            SERVER,
            RegistrationConfig(enabled=True, require_token=False),
            self.store,
            reg_store,
            self.sessions,
            uia,
            hasher,
            self.clock,
        )
        self.devices = DeviceService(self.store, self.sessions, hasher, self.hooks)
        self.profiles = ProfileService(SERVER, ProfileStore(db), self.store, self.hooks)
        self.hooks.deactivation.append(self.profiles)

    async def user_with_login(self, localpart: str, device_id: str) -> str:
        user_id = f"@{localpart}:{SERVER}"
        if await self.store.get_user(user_id) is None:
            await self.registration.register_local_user(localpart, "pw")
        issued = await self.sessions.create_login(
            user_id,
            device_id=device_id,
            initial_display_name=None,
            want_refresh=False,
            client_ip=None,
        )
        return issued.access_token


async def test_token_cache_and_invalidation(database: Database) -> None:
    s = Services(database)
    token = await s.user_with_login("ann", "D1")
    owner = await s.sessions.get_token_owner(token)
    assert (owner.user_id, owner.device_id, owner.is_guest) == (
        f"@ann:{SERVER}",
        "D1",
        False,
    )
    await s.sessions.get_token_owner(token)
    assert s.store.lookups == 1  # the second resolution came from the cache
    await s.devices.logout(owner)
    with pytest.raises(MatrixError) as err:
        await s.sessions.get_token_owner(token)
    assert err.value.errcode == "M_UNKNOWN_TOKEN"

    # The cache is bounded (cache_size=2 here): evicted tokens are looked up again.
    tokens = [await s.user_with_login("ann", f"E{i}") for i in range(3)]
    for t in tokens:
        await s.sessions.get_token_owner(t)
    before = s.store.lookups
    await s.sessions.get_token_owner(tokens[0])
    assert s.store.lookups == before + 1


async def test_lookup_racing_a_revocation_is_not_cached(database: Database) -> None:
    s = Services(database)
    token = await s.user_with_login("bea", "D1")
    s.store.hold = asyncio.Event()
    s.store.entered.clear()
    lookup = asyncio.create_task(s.sessions.get_token_owner(token))
    await s.store.entered.wait()
    # The device is deleted while the lookup (which read the row before) is in flight.
    await s.devices.delete_devices(f"@bea:{SERVER}", ["D1"])
    s.store.hold.set()
    s.store.hold = None
    await lookup
    with pytest.raises(MatrixError):
        await s.sessions.get_token_owner(token)


async def test_last_seen_is_throttled(database: Database) -> None:
    s = Services(database)
    token = await s.user_with_login("cid", "D1")
    s.store.last_seen.clear()
    for _ in range(5):
        await s.sessions.get_token_owner(token, "10.0.0.1")
    assert len(s.store.last_seen) == 1
    s.clock.advance(60)
    await s.sessions.get_token_owner(token, "10.0.0.1")
    assert len(s.store.last_seen) == 1
    await s.sessions.get_token_owner(
        token, "10.0.0.2"
    )  # a new address is written at once
    s.clock.advance(121)
    await s.sessions.get_token_owner(token)
    assert [ip for _d, ip, _ts in s.store.last_seen] == ["10.0.0.1", "10.0.0.2", None]
    device = await s.store.get_device(f"@cid:{SERVER}", "D1")
    assert device is not None
    assert (device.last_seen_ip, device.last_seen_ts) == (
        "10.0.0.2",
        s.clock.time_msec(),
    )


async def test_hooks(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    s = Services(database)
    rec = Recorder()
    s.hooks.deactivation.append(rec)
    s.hooks.profile_change.extend([Broken(), rec])
    s.hooks.devices_deleted.append(rec)
    user_id = f"@dee:{SERVER}"
    await s.user_with_login("dee", "D1")
    await s.user_with_login("dee", "D2")

    await s.profiles.set_profile_field(user_id, "displayname", "Dee")
    await s.profiles.set_profile_field(
        user_id, "displayname", "Dee"
    )  # unchanged: no event
    await s.profiles.set_profile_field(user_id, "m.tz", "UTC")  # not in member events
    await s.devices.delete_devices(user_id, ["D2", "D2", "NOPE"])
    await s.devices.deactivate(user_id, erase=True)
    assert rec.events == [
        ("profile", user_id),
        ("devices", (user_id, ("D2",))),
        ("devices", (user_id, ("D1",))),
        ("profile", user_id),  # the erase cleared the profile
        ("deactivate", (user_id, True)),
    ]
    assert "listener bug" in caplog.text
    assert await ProfileStore(database).get_profile(user_id) == {}


def test_localpart_rules() -> None:
    for ok in ("a", "a.b_c=d-e/f+g", "0a"):
        check_new_localpart(ok, SERVER)
    for bad in ("", "A", "a b", "a:b", "é", "123", "x" * 250):
        with pytest.raises(MatrixError):
            check_new_localpart(bad, SERVER)
    assert hash_token("t") == hash_token("t") != hash_token("u")


def register_request(username: str, password: str | None) -> RegisterRequest:
    return RegisterRequest(
        username=username,
        password=password,
        device_id=None,
        initial_device_display_name=None,
        inhibit_login=True,
        want_refresh=False,
        guest_access_token=None,
        client_ip=None,
    )


def uia_request(auth: dict[str, str] | None) -> UiaRequest:
    return UiaRequest(uri="/register", method="POST", auth=auth)


async def first_round(s: Services, username: str, password: str) -> str:
    with pytest.raises(UiaRequiredError) as info:
        await s.registration.register(
            register_request(username, password), uia_request(None)
        )
    return info.value.session_id


@pytest.mark.parametrize("resend_password", [True, False])
async def test_registration_hashes_the_password_once(
    database: Database, resend_password: bool
) -> None:
    s = Services(database)
    session_id = await first_round(s, "reg", "secret pw")
    assert s.hasher.hashes == 1
    # The session keeps only the slow hash: nothing cheaper to attack.
    session = await s.reg_store.get_uia_session(session_id)
    assert session is not None
    # Besides the hash: the user ID and the round's other parameters, which a later
    # round may omit.
    assert set(session.data) == {
        "user_id",
        "password_hash",
        "inhibit_login",
        "refresh_token",
    }
    assert session.data["password_hash"].startswith("$argon2id$")
    assert "secret pw" not in repr(session)
    # Most clients send the password again on the last round.
    done = await s.registration.register(
        register_request("reg", "secret pw" if resend_password else None),
        uia_request({"type": "m.login.dummy", "session": session_id}),
    )
    assert s.hasher.hashes == 1
    user = await s.store.get_user(done.user_id)
    assert user is not None
    assert user.password_hash is not None
    assert await s.hasher.verify(user.password_hash, "secret pw")


async def test_one_round_registration_hashes_once(database: Database) -> None:
    s = Services(database)
    await s.registration.register(
        register_request("quick", "pw"), uia_request({"type": "m.login.dummy"})
    )
    assert s.hasher.hashes == 1


class SlowArgon:
    """Stands in for argon2: records how many hashes run at once, and on which threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[threading.Thread] = set()

    def hash(self, password: str) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread())
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        return "hashed " + password


async def test_password_hashing_runs_on_its_own_bounded_pool() -> None:
    hasher = PasswordHasher(max_threads=2)
    slow = SlowArgon()
    hasher._hasher = slow  # type: ignore[assignment]
    hashes = await asyncio.gather(*(hasher.hash(f"pw{i}") for i in range(8)))
    assert hashes == [f"hashed pw{i}" for i in range(8)]
    # Queued, not one 19 MiB argon2 buffer per thread of the default pool.
    assert slow.most == 2
    assert len(slow.threads) == 2
    assert all(t.name.startswith("password-hash") for t in slow.threads)
    await hasher.close()
    assert not any(t.is_alive() for t in slow.threads)
    with pytest.raises(RuntimeError):
        await hasher.hash("after shutdown")
