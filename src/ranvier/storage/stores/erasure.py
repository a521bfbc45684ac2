"""Erased users (schema 0014): accounts deactivated with `erase: true`.

Read on every served batch of events (client and federation read paths), so answers
are cached per user; marking a user erased updates the cache after the commit. Erasure
is never undone (a deactivated account cannot come back), so a cached "erased" never
goes stale; a cached "not erased" in another process sharing the database can lag
until its entry is evicted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn
from ranvier.util.lru import LruCache

__all__ = ["ErasureStore"]

_CACHE_SIZE = 50_000


class ErasureStore:
    def __init__(self, db: Database, now_ms: Callable[[], int]) -> None:
        self._db = db
        self._now_ms = now_ms
        self._cache: LruCache[str, bool] = LruCache(_CACHE_SIZE)

    async def mark_user_erased(self, user_id: str) -> None:
        await self._db.run_txn(
            "mark_user_erased", self._mark_user_erased_txn, user_id, self._now_ms()
        )

    def _cache_erased(self, user_id: str) -> None:
        # Bumps the generation first: a read that started before the commit must
        # not put "not erased" back.
        self._cache.invalidate([user_id])
        self._cache.set(user_id, True)

    def _mark_user_erased_txn(self, txn: Txn, user_id: str, now_ms: int) -> None:
        txn.execute(
            "INSERT INTO erased_users (user_id, erased_ts) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO NOTHING",
            (user_id, now_ms),
        )
        txn.call_after(self._cache_erased, user_id)

    async def get_erased_users(self, user_ids: Iterable[str]) -> set[str]:
        """Those of `user_ids` who are erased."""
        wanted = set(user_ids)
        out: set[str] = set()
        missing: list[str] = []
        for user_id in wanted:
            cached = self._cache.get(user_id)
            if cached is None:
                missing.append(user_id)
            elif cached:
                out.add(user_id)
        if not missing:
            return out
        generation = self._cache.generation()
        found = await self._db.run_read_txn(
            "get_erased_users", _get_erased_users_txn, sorted(missing)
        )
        for user_id in missing:
            self._cache.set_if_unchanged(user_id, user_id in found, generation)
        return out | found

    async def is_user_erased(self, user_id: str) -> bool:
        return bool(await self.get_erased_users([user_id]))


def _get_erased_users_txn(txn: Txn, user_ids: list[str]) -> set[str]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(f"SELECT user_id FROM erased_users WHERE {cond}", params)
    return {str(row[0]) for row in txn.fetchall()}
