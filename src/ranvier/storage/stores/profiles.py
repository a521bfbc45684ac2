"""Profile fields of local users: `displayname`, `avatar_url`, `m.tz` and custom keys.

Spec: Client-Server API > User data > Profiles (v1.16 extended profiles). Values are any
JSON, stored encoded, one row per field.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_profile(self, user_id: str) -> JsonDict:
        """All fields of the user's profile ({} if none, or no such user)."""
        profiles = await self._db.run_read_txn(
            "get_profile", _get_profiles_txn, [user_id], None
        )
        return profiles.get(user_id, {})

    async def get_profiles(
        self, user_ids: Collection[str], fields: Collection[str] | None = None
    ) -> dict[str, JsonDict]:
        """Profiles of many users at once (members lists); users without fields are absent."""
        if not user_ids:
            return {}
        return await self._db.run_read_txn(
            "get_profiles",
            _get_profiles_txn,
            list(user_ids),
            None if fields is None else list(fields),
        )

    async def set_profile_field(self, user_id: str, field: str, value: Any) -> None:
        await self._db.run_txn(
            "set_profile_field",
            _set_field_txn,
            user_id,
            field,
            encode_json(value).decode(),
        )

    async def delete_profile_field(self, user_id: str, field: str) -> bool:
        return await self._db.run_txn(
            "delete_profile_field", _delete_txn, user_id, field
        )

    async def delete_profile(self, user_id: str) -> None:
        await self._db.run_txn("delete_profile", _delete_txn, user_id, None)


def _get_profiles_txn(
    txn: Txn, user_ids: list[str], fields: list[str] | None
) -> dict[str, JsonDict]:
    cond, params = txn.in_list("user_id", user_ids)
    sql = f"SELECT user_id, field, value FROM profile_fields WHERE {cond}"
    if fields is not None:
        if not fields:
            return {}
        field_cond, field_params = txn.in_list("field", fields)
        sql += f" AND {field_cond}"
        params = [*params, *field_params]
    txn.execute(sql + " ORDER BY user_id, field", params)
    out: dict[str, JsonDict] = {}
    for user_id, field, value in txn.fetchall():
        out.setdefault(str(user_id), {})[str(field)] = decode_json(str(value))
    return out


def _set_field_txn(txn: Txn, user_id: str, field: str, value: str) -> None:
    txn.execute(
        "INSERT INTO profile_fields (user_id, field, value) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
        (user_id, field, value),
    )


def _delete_txn(txn: Txn, user_id: str, field: str | None) -> bool:
    if field is None:
        txn.execute("DELETE FROM profile_fields WHERE user_id = ?", (user_id,))
    else:
        txn.execute(
            "DELETE FROM profile_fields WHERE user_id = ? AND field = ?",
            (user_id, field),
        )
    return txn.rowcount > 0
