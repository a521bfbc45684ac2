"""Each user's ignored users: the `ignored_users` of their global
`m.ignored_user_list` account data (spec: C-S API > Ignoring Users), read from the
account data table and cached per user.

Asked by every read path (timelines, invites) and by push evaluation, so answers are
cached; `on_account_data` (a write listener of `AccountDataService`) drops a user's
entry when they write the list. Another process sharing the database keeps its own
cache, which can lag until evicted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from ranvier.core.json import decode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn
from ranvier.util.lru import LruCache

__all__ = ["IGNORED_USER_LIST", "IgnoredUsersStore", "ignored_users_of"]

IGNORED_USER_LIST: Final = "m.ignored_user_list"
_CACHE_SIZE = 50_000


def ignored_users_of(content: Any) -> frozenset[str]:
    """The user IDs in an `m.ignored_user_list` content (malformed parts ignored)."""
    users = content.get("ignored_users") if isinstance(content, dict) else None
    if not isinstance(users, dict):
        return frozenset()
    return frozenset(u for u in users if isinstance(u, str))


class IgnoredUsersStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: LruCache[str, frozenset[str]] = LruCache(_CACHE_SIZE)

    async def get_ignored_users(self, user_id: str) -> frozenset[str]:
        return (await self.get_ignored_users_many([user_id]))[user_id]

    async def get_ignored_users_many(
        self, user_ids: Iterable[str]
    ) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        missing: list[str] = []
        for user_id in set(user_ids):
            cached = self._cache.get(user_id)
            if cached is None:
                missing.append(user_id)
            else:
                out[user_id] = cached
        if missing:
            generation = self._cache.generation()
            loaded = await self._db.run_read_txn(
                "get_ignored_users", _get_ignored_txn, sorted(missing)
            )
            for user_id in missing:
                value = loaded.get(user_id, frozenset())
                self._cache.set_if_unchanged(user_id, value, generation)
                out[user_id] = value
        return out

    async def get_users_ignoring(
        self, sender: str, user_ids: Iterable[str]
    ) -> set[str]:
        """Those of `user_ids` who ignore `sender`."""
        lists = await self.get_ignored_users_many(user_ids)
        return {u for u, ignored in lists.items() if sender in ignored}

    def on_account_data(
        self, user_id: str, room_id: str | None, data_type: str
    ) -> None:
        if room_id is None and data_type == IGNORED_USER_LIST:
            self._cache.invalidate([user_id])


def _get_ignored_txn(txn: Txn, user_ids: list[str]) -> dict[str, frozenset[str]]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(
        f"SELECT user_id, content FROM account_data WHERE {cond}"
        " AND room_id = '' AND data_type = ?",
        [*params, IGNORED_USER_LIST],
    )
    out: dict[str, frozenset[str]] = {}
    for user_id, content in txn.fetchall():
        try:
            out[str(user_id)] = ignored_users_of(decode_json(content))
        except ValueError:
            out[str(user_id)] = frozenset()
    return out
