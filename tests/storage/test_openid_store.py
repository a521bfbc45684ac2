"""OpenID tokens on both engines: stored hashed, found until they expire, expired rows
removed when new tokens are issued."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.openid import OpenIdStore
from ranvier.storage.txn import Txn


def _count_txn(txn: Txn) -> int:
    txn.execute("SELECT COUNT(*) FROM openid_tokens")
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


async def test_tokens_expire_and_are_cleaned_up(database: Database) -> None:
    store = OpenIdStore(database)
    await store.add_openid_token("h1", "@alice:test", expires_ts=2000, now_ms=1000)
    assert await store.get_openid_token_user("h1", 1999) == "@alice:test"
    assert await store.get_openid_token_user("h1", 2000) is None
    assert await store.get_openid_token_user("nope", 1000) is None
    await store.add_openid_token("h2", "@bob:test", expires_ts=9000, now_ms=3000)
    assert await database.run_read_txn("count", _count_txn) == 1
    assert await store.get_openid_token_user("h2", 3000) == "@bob:test"
