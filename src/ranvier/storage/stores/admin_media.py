"""Media reads and deletions of the server admin API: local media by user, per-user
statistics, deletion of local media by ID or by age and size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ranvier.storage.database import Database
from ranvier.storage.stores.media import LocalMedia
from ranvier.storage.txn import Txn

_COLUMNS: Final = (
    "media_id, user_id, content_type, upload_name, size, sha256, created_ts, upload_ts,"
    " unused_expires_ts, quarantined, url_cache"
)


def _media(r: tuple[Any, ...]) -> LocalMedia:
    return LocalMedia(
        media_id=str(r[0]),
        user_id=str(r[1]),
        content_type=None if r[2] is None else str(r[2]),
        upload_name=None if r[3] is None else str(r[3]),
        size=None if r[4] is None else int(r[4]),
        sha256=None if r[5] is None else str(r[5]),
        created_ts=int(r[6]),
        upload_ts=None if r[7] is None else int(r[7]),
        unused_expires_ts=None if r[8] is None else int(r[8]),
        quarantined=bool(r[9]),
        url_cache=None if r[10] is None else str(r[10]),
    )


@dataclass(frozen=True, slots=True)
class UserMediaStats:
    user_id: str
    media_count: int
    media_length: int


def _user_media_txn(
    txn: Txn, user_id: str, start: int, limit: int, forwards: bool
) -> tuple[list[LocalMedia], int]:
    direction = "ASC" if forwards else "DESC"
    txn.execute(
        f"SELECT {_COLUMNS} FROM local_media WHERE user_id = ? AND url_cache IS NULL"
        f" ORDER BY created_ts {direction}, media_id {direction} LIMIT ? OFFSET ?",
        (user_id, limit, start),
    )
    rows = [_media(r) for r in txn.fetchall()]
    txn.execute(
        "SELECT COUNT(*) FROM local_media WHERE user_id = ? AND url_cache IS NULL",
        (user_id,),
    )
    count = txn.fetchone()
    return rows, int(count[0]) if count else 0


def _stats_txn(
    txn: Txn, start: int, limit: int, forwards: bool
) -> tuple[list[UserMediaStats], int]:
    direction = "ASC" if forwards else "DESC"
    txn.execute(
        "SELECT user_id, COUNT(*), COALESCE(SUM(size), 0) FROM local_media"
        " WHERE url_cache IS NULL GROUP BY user_id"
        f" ORDER BY user_id {direction} LIMIT ? OFFSET ?",
        (limit, start),
    )
    rows = [UserMediaStats(str(r[0]), int(r[1]), int(r[2])) for r in txn.fetchall()]
    txn.execute(
        "SELECT COUNT(DISTINCT user_id) FROM local_media WHERE url_cache IS NULL"
    )
    count = txn.fetchone()
    return rows, int(count[0]) if count else 0


def _delete_one_txn(txn: Txn, media_id: str) -> list[str]:
    txn.execute("SELECT sha256 FROM local_media WHERE media_id = ?", (media_id,))
    hashes = [str(r[0]) for r in txn.fetchall() if r[0] is not None]
    txn.execute(
        "SELECT sha256 FROM media_thumbnails WHERE origin = '' AND media_id = ?",
        (media_id,),
    )
    hashes.extend(str(r[0]) for r in txn.fetchall())
    txn.execute(
        "DELETE FROM media_thumbnails WHERE origin = '' AND media_id = ?", (media_id,)
    )
    txn.execute("DELETE FROM local_media WHERE media_id = ?", (media_id,))
    return hashes


def _delete_media_txn(txn: Txn, media_ids: list[str]) -> list[str]:
    hashes: list[str] = []
    for media_id in media_ids:
        hashes.extend(_delete_one_txn(txn, media_id))
    return sorted(set(hashes))


def _old_media_txn(
    txn: Txn, before_ts: int, size_gt: int, keep_profiles: bool
) -> list[str]:
    sql = (
        "SELECT media_id FROM local_media WHERE created_ts < ? AND COALESCE(size, 0) > ?"
        " AND url_cache IS NULL AND NOT quarantined"
    )
    if keep_profiles:
        # Avatars in use stay (Synapse's keep_profiles): profile values are JSON strings.
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM profile_fields p WHERE p.field = 'avatar_url'"
            " AND p.value LIKE '%/' || local_media.media_id || '\"')"
        )
    txn.execute(sql, (before_ts, size_gt))
    return [str(r[0]) for r in txn.fetchall()]


def _purge_remote_txn(txn: Txn, before_ts: int) -> tuple[int, list[str]]:
    txn.execute(
        "SELECT origin, media_id, sha256 FROM remote_media_cache WHERE last_access_ts < ?",
        (before_ts,),
    )
    rows = txn.fetchall()
    hashes: list[str] = []
    for origin, media_id, sha in rows:
        hashes.append(str(sha))
        txn.execute(
            "SELECT sha256 FROM media_thumbnails WHERE origin = ? AND media_id = ?",
            (origin, media_id),
        )
        hashes.extend(str(r[0]) for r in txn.fetchall())
        txn.execute(
            "DELETE FROM media_thumbnails WHERE origin = ? AND media_id = ?",
            (origin, media_id),
        )
        txn.execute(
            "DELETE FROM remote_media_cache WHERE origin = ? AND media_id = ?",
            (origin, media_id),
        )
    return len(rows), sorted(set(hashes))


class MediaAdminStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_user_media(
        self, user_id: str, start: int, limit: int, forwards: bool
    ) -> tuple[list[LocalMedia], int]:
        return await self._db.run_read_txn(
            "admin_user_media", _user_media_txn, user_id, start, limit, forwards
        )

    async def get_user_media_stats(
        self, start: int, limit: int, forwards: bool
    ) -> tuple[list[UserMediaStats], int]:
        return await self._db.run_read_txn(
            "admin_user_media_stats", _stats_txn, start, limit, forwards
        )

    async def delete_local_media(self, media_ids: list[str]) -> list[str]:
        """Delete the rows (media and thumbnails); returns the files' hashes."""
        return await self._db.run_txn(
            "admin_delete_local_media", _delete_media_txn, media_ids
        )

    async def get_old_media_ids(
        self, before_ts: int, size_gt: int, keep_profiles: bool
    ) -> list[str]:
        return await self._db.run_read_txn(
            "admin_old_media", _old_media_txn, before_ts, size_gt, keep_profiles
        )

    async def purge_remote_media(self, before_ts: int) -> tuple[int, list[str]]:
        """Drop cached remote media last read before `before_ts`: (count, hashes)."""
        return await self._db.run_txn(
            "admin_purge_remote_media", _purge_remote_txn, before_ts
        )
