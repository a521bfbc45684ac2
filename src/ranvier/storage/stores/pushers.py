"""Pushers (schema 0008): where a user's notifications are delivered.

A pusher is keyed by (user, app_id, pushkey). `last_stream_ordering` is the delivery
position, persisted after each delivery so a restart neither repeats nor skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PusherRow:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    device_id: str | None
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: JsonDict
    pushkey_ts: int
    last_stream_ordering: int
    last_success_ts: int | None = None
    failing_since: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.app_id, self.pushkey)


_COLUMNS = (
    "user_id, app_id, pushkey, kind, device_id, app_display_name, device_display_name,"
    " profile_tag, lang, data, pushkey_ts, last_stream_ordering, last_success_ts,"
    " failing_since"
)


def _pusher(r: tuple[Any, ...]) -> PusherRow:
    data = decode_json(r[9])
    return PusherRow(
        user_id=str(r[0]),
        app_id=str(r[1]),
        pushkey=str(r[2]),
        kind=str(r[3]),
        device_id=None if r[4] is None else str(r[4]),
        app_display_name=str(r[5]),
        device_display_name=str(r[6]),
        profile_tag=None if r[7] is None else str(r[7]),
        lang=str(r[8]),
        data=data if isinstance(data, dict) else {},
        pushkey_ts=int(r[10]),
        last_stream_ordering=int(r[11]),
        last_success_ts=None if r[12] is None else int(r[12]),
        failing_since=None if r[13] is None else int(r[13]),
    )


class PusherStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_pushers(self, user_id: str | None = None) -> list[PusherRow]:
        """The user's pushers, or every pusher (start-up)."""
        return await self._db.run_read_txn("get_pushers", _get_pushers_txn, user_id)

    async def get_pusher(self, key: tuple[str, str, str]) -> PusherRow | None:
        return await self._db.run_read_txn("get_pusher", _get_pusher_txn, key)

    async def set_pusher(
        self, pusher: PusherRow, *, replace_others: bool
    ) -> list[tuple[str, str, str]]:
        """Create or update; with `replace_others`, delete the same app_id + pushkey of
        other users. Returns the keys of the pushers deleted."""
        return await self._db.run_txn(
            "set_pusher", _set_pusher_txn, pusher, replace_others
        )

    async def delete_pusher(self, key: tuple[str, str, str]) -> bool:
        return await self._db.run_txn("delete_pusher", _delete_pusher_txn, key)

    async def delete_pushers_of_devices(
        self, user_id: str, device_ids: list[str]
    ) -> list[tuple[str, str, str]]:
        if not device_ids:
            return []
        return await self._db.run_txn(
            "delete_pushers_of_devices", _delete_device_pushers_txn, user_id, device_ids
        )

    async def update_progress(
        self,
        key: tuple[str, str, str],
        *,
        last_stream_ordering: int,
        last_success_ts: int | None,
        failing_since: int | None,
    ) -> None:
        await self._db.run_txn(
            "update_pusher_progress",
            _update_progress_txn,
            key,
            last_stream_ordering,
            last_success_ts,
            failing_since,
        )


def _get_pushers_txn(txn: Txn, user_id: str | None) -> list[PusherRow]:
    if user_id is None:
        txn.execute(f"SELECT {_COLUMNS} FROM pushers ORDER BY user_id, app_id, pushkey")
    else:
        txn.execute(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey",
            (user_id,),
        )
    return [_pusher(r) for r in txn.fetchall()]


_KEY = "user_id = ? AND app_id = ? AND pushkey = ?"


def _get_pusher_txn(txn: Txn, key: tuple[str, str, str]) -> PusherRow | None:
    txn.execute(f"SELECT {_COLUMNS} FROM pushers WHERE {_KEY}", key)
    row = txn.fetchone()
    return _pusher(row) if row else None


def _set_pusher_txn(
    txn: Txn, p: PusherRow, replace_others: bool
) -> list[tuple[str, str, str]]:
    removed: list[tuple[str, str, str]] = []
    if replace_others:
        txn.execute(
            "SELECT user_id FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
            (p.app_id, p.pushkey, p.user_id),
        )
        removed = [(str(r[0]), p.app_id, p.pushkey) for r in txn.fetchall()]
        txn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
            (p.app_id, p.pushkey, p.user_id),
        )
    # An update keeps the delivery position: the pusher goes on where it was.
    txn.execute(
        f"INSERT INTO pushers ({_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
        " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET"
        " kind = excluded.kind, device_id = excluded.device_id,"
        " app_display_name = excluded.app_display_name,"
        " device_display_name = excluded.device_display_name,"
        " profile_tag = excluded.profile_tag, lang = excluded.lang,"
        " data = excluded.data, pushkey_ts = excluded.pushkey_ts",
        (
            p.user_id,
            p.app_id,
            p.pushkey,
            p.kind,
            p.device_id,
            p.app_display_name,
            p.device_display_name,
            p.profile_tag,
            p.lang,
            encode_json(p.data).decode(),
            p.pushkey_ts,
            p.last_stream_ordering,
        ),
    )
    return removed


def _delete_pusher_txn(txn: Txn, key: tuple[str, str, str]) -> bool:
    txn.execute(f"DELETE FROM pushers WHERE {_KEY}", key)
    return txn.rowcount > 0


def _delete_device_pushers_txn(
    txn: Txn, user_id: str, device_ids: list[str]
) -> list[tuple[str, str, str]]:
    cond, params = txn.in_list("device_id", device_ids)
    txn.execute(
        f"SELECT app_id, pushkey FROM pushers WHERE user_id = ? AND {cond}",
        (user_id, *params),
    )
    keys = [(user_id, str(r[0]), str(r[1])) for r in txn.fetchall()]
    txn.execute(f"DELETE FROM pushers WHERE user_id = ? AND {cond}", (user_id, *params))
    return keys


def _update_progress_txn(
    txn: Txn,
    key: tuple[str, str, str],
    last_stream_ordering: int,
    last_success_ts: int | None,
    failing_since: int | None,
) -> None:
    # Never backwards: a worker that is being replaced (the pusher set again, which
    # moves it to "now") may still report progress from before, and a lower position
    # would make the new worker deliver those events a second time.
    txn.execute(
        "UPDATE pushers SET last_stream_ordering = ?, last_success_ts = ?,"
        f" failing_since = ? WHERE {_KEY} AND last_stream_ordering <= ?",
        (
            last_stream_ordering,
            last_success_ts,
            failing_since,
            *key,
            last_stream_ordering,
        ),
    )
