"""Erased users (schema 0014), on SQLite and PostgreSQL."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.erasure import ErasureStore


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
