"""Erased users (schema 0014), erasing a user's account data, and the ignored-users
lists read from account data, on SQLite and PostgreSQL."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.account_data import AccountDataStore
from ranvier.storage.stores.erasure import ErasureStore
from ranvier.storage.stores.ignored_users import IGNORED_USER_LIST, IgnoredUsersStore


async def test_erasure_is_stored_and_survives_a_new_store(database: Database) -> None:
    store = ErasureStore(database, lambda: 1_000)
    users = ["@a:x", "@b:x", "@c:x"]
    assert await store.get_erased_users(users) == set()
    await store.mark_user_erased("@b:x")
    # The cached "not erased" answer is replaced after the commit.
    assert await store.get_erased_users(users) == {"@b:x"}
    assert await store.is_user_erased("@b:x")
    await store.mark_user_erased("@b:x")  # idempotent
    fresh = ErasureStore(database, lambda: 2_000)
    assert await fresh.get_erased_users(users) == {"@b:x"}
    assert not await fresh.is_user_erased("@a:x")
    assert await fresh.get_erased_users([]) == set()


async def test_ignored_users_follow_account_data(database: Database) -> None:
    data = await AccountDataStore.open(database)
    ignored = IgnoredUsersStore(database)
    assert await ignored.get_ignored_users("@a:x") == frozenset()
    await data.set_account_data(
        "@a:x", None, IGNORED_USER_LIST, {"ignored_users": {"@b:x": {}, "@c:x": {}}}
    )
    await data.set_account_data(
        "@c:x", None, IGNORED_USER_LIST, {"ignored_users": ["not", "a", "map"]}
    )
    # Room account data of that type is not the list.
    await data.set_account_data(
        "@d:x", "!r:x", IGNORED_USER_LIST, {"ignored_users": {"@b:x": {}}}
    )
    # Cached until the write listener says otherwise.
    assert await ignored.get_ignored_users("@a:x") == frozenset()
    ignored.on_account_data("@a:x", None, IGNORED_USER_LIST)
    assert await ignored.get_ignored_users("@a:x") == {"@b:x", "@c:x"}
    lists = await ignored.get_ignored_users_many(["@a:x", "@c:x", "@d:x"])
    assert lists == {"@a:x": {"@b:x", "@c:x"}, "@c:x": frozenset(), "@d:x": frozenset()}
    assert await ignored.get_users_ignoring("@b:x", ["@a:x", "@c:x", "@d:x"]) == {
        "@a:x"
    }


async def test_erasing_account_data(database: Database) -> None:
    data = await AccountDataStore.open(database)
    await data.set_account_data("@a:x", None, "m.direct", {"@b:x": ["!r:x"]})
    await data.set_account_data("@a:x", None, IGNORED_USER_LIST, {"ignored_users": {}})
    await data.set_account_data("@a:x", "!r:x", "m.tag", {"tags": {"u.work": {}}})
    await data.set_account_data("@b:x", None, "m.direct", {})
    deleted = await data.delete_account_data_for_user("@a:x")
    assert deleted == sorted(["m.direct", IGNORED_USER_LIST])
    assert await data.get_account_data("@a:x", None, "m.direct") is None
    assert await data.get_account_data("@a:x", "!r:x", "m.tag") is None
    assert await data.get_account_data("@b:x", None, "m.direct") == {}
