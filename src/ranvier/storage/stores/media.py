"""Media repository metadata (schema 0006): local uploads, cached remote media,
thumbnails and URL previews.

The bytes are files named by SHA-256 and shared by every row with that hash; the
cleanup functions return the hashes whose last row they removed, and
`is_sha256_referenced` tells the file layer whether a file may go.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

LOCAL_ORIGIN = ""  # `media_thumbnails.origin` of local media


@dataclass(frozen=True, slots=True)
class LocalMedia:
    media_id: str
    user_id: str
    content_type: str | None
    upload_name: str | None
    size: int | None
    sha256: str | None
    created_ts: int
    upload_ts: int | None
    unused_expires_ts: int | None
    quarantined: bool
    url_cache: str | None = None

    @property
    def is_uploaded(self) -> bool:
        return self.upload_ts is not None and self.sha256 is not None


@dataclass(frozen=True, slots=True)
class RemoteMedia:
    origin: str
    media_id: str
    content_type: str
    upload_name: str | None
    size: int
    sha256: str
    created_ts: int
    last_access_ts: int
    quarantined: bool = False


@dataclass(frozen=True, slots=True)
class Thumbnail:
    width: int
    height: int
    method: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UploadedContent:
    content_type: str
    upload_name: str | None
    size: int
    sha256: str


class PendingUploadResult(enum.Enum):
    OK = "ok"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    FORBIDDEN = "forbidden"
    ALREADY_UPLOADED = "already_uploaded"


_LOCAL_COLUMNS = (
    "media_id, user_id, content_type, upload_name, size, sha256, created_ts,"
    " upload_ts, unused_expires_ts, quarantined, url_cache"
)
_REMOTE_COLUMNS = (
    "origin, media_id, content_type, upload_name, size, sha256, created_ts,"
    " last_access_ts, quarantined"
)


def _local(row: tuple[object, ...]) -> LocalMedia:
    (mid, uid, ctype, name, size, sha, created, uploaded, expires, quar, url) = row
    return LocalMedia(
        media_id=str(mid),
        user_id=str(uid),
        content_type=None if ctype is None else str(ctype),
        upload_name=None if name is None else str(name),
        size=None if size is None else int(str(size)),
        sha256=None if sha is None else str(sha),
        created_ts=int(str(created)),
        upload_ts=None if uploaded is None else int(str(uploaded)),
        unused_expires_ts=None if expires is None else int(str(expires)),
        quarantined=bool(quar),
        url_cache=None if url is None else str(url),
    )


def _remote(row: tuple[object, ...]) -> RemoteMedia:
    (origin, mid, ctype, name, size, sha, created, accessed, quar) = row
    return RemoteMedia(
        origin=str(origin),
        media_id=str(mid),
        content_type=str(ctype),
        upload_name=None if name is None else str(name),
        size=int(str(size)),
        sha256=str(sha),
        created_ts=int(str(created)),
        last_access_ts=int(str(accessed)),
        quarantined=bool(quar),
    )


class MediaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- local media ----------------------------------------------------------------
    async def store_local_media(
        self,
        media_id: str,
        user_id: str,
        content: UploadedContent,
        now: int,
        *,
        url_cache: str | None = None,
    ) -> None:
        await self._db.run_txn(
            "store_local_media",
            _store_local_media_txn,
            media_id,
            user_id,
            content,
            now,
            url_cache,
        )

    async def create_pending_media(
        self, media_id: str, user_id: str, now: int, expires_ts: int, max_pending: int
    ) -> bool:
        """Reserve `media_id` for a later upload; False when the user already has
        `max_pending` unexpired reservations."""
        return await self._db.run_txn(
            "create_pending_media",
            _create_pending_media_txn,
            media_id,
            user_id,
            now,
            expires_ts,
            max_pending,
        )

    async def complete_pending_upload(
        self, media_id: str, user_id: str, content: UploadedContent, now: int
    ) -> PendingUploadResult:
        return await self._db.run_txn(
            "complete_pending_upload",
            _complete_pending_upload_txn,
            media_id,
            user_id,
            content,
            now,
        )

    async def get_local_media(self, media_id: str) -> LocalMedia | None:
        return await self._db.run_read_txn(
            "get_local_media", _get_local_media_txn, media_id
        )

    async def set_local_media_quarantined(self, media_id: str, value: bool) -> bool:
        return await self._db.run_txn(
            "set_local_media_quarantined", _set_quarantined_txn, media_id, value
        )

    # -- remote media ---------------------------------------------------------------
    async def get_remote_media(self, origin: str, media_id: str) -> RemoteMedia | None:
        return await self._db.run_read_txn(
            "get_remote_media", _get_remote_media_txn, origin, media_id
        )

    async def store_remote_media(self, media: RemoteMedia) -> None:
        await self._db.run_txn("store_remote_media", _store_remote_media_txn, media)

    async def touch_remote_media(self, origin: str, media_id: str, now: int) -> None:
        await self._db.run_txn(
            "touch_remote_media", _touch_remote_media_txn, origin, media_id, now
        )

    # -- thumbnails -----------------------------------------------------------------
    async def get_thumbnail(
        self, origin: str, media_id: str, width: int, height: int, method: str
    ) -> Thumbnail | None:
        return await self._db.run_read_txn(
            "get_thumbnail", _get_thumbnail_txn, origin, media_id, width, height, method
        )

    async def store_thumbnail(
        self, origin: str, media_id: str, thumbnail: Thumbnail
    ) -> None:
        await self._db.run_txn(
            "store_thumbnail", _store_thumbnail_txn, origin, media_id, thumbnail
        )

    # -- URL previews ---------------------------------------------------------------
    async def get_url_preview(self, url: str, now: int) -> str | None:
        """The cached OpenGraph JSON of `url`, unless expired."""
        return await self._db.run_read_txn(
            "get_url_preview", _get_url_preview_txn, url, now
        )

    async def store_url_preview(
        self, url: str, og_json: str, now: int, expires_ts: int
    ) -> None:
        await self._db.run_txn(
            "store_url_preview", _store_url_preview_txn, url, og_json, now, expires_ts
        )

    # -- cleanup --------------------------------------------------------------------
    async def delete_expired_url_previews(self, now: int) -> int:
        return await self._db.run_txn(
            "delete_expired_url_previews", _delete_expired_url_previews_txn, now
        )

    async def delete_url_cache_media_before(self, ts: int) -> list[str]:
        """Drop preview images downloaded before `ts`; returns their hashes."""
        return await self._db.run_txn(
            "delete_url_cache_media_before", _delete_url_cache_media_txn, ts
        )

    async def delete_remote_media_before(self, ts: int) -> list[str]:
        """Drop cached remote media last read before `ts`; returns their hashes."""
        return await self._db.run_txn(
            "delete_remote_media_before", _delete_remote_media_txn, ts
        )

    async def delete_expired_pending_media(self, now: int) -> int:
        return await self._db.run_txn(
            "delete_expired_pending_media", _delete_expired_pending_txn, now
        )

    async def is_sha256_referenced(self, sha256: str) -> bool:
        return await self._db.run_read_txn(
            "is_sha256_referenced", _is_sha256_referenced_txn, sha256
        )


# -- transactions -------------------------------------------------------------------


def _store_local_media_txn(
    txn: Txn,
    media_id: str,
    user_id: str,
    content: UploadedContent,
    now: int,
    url_cache: str | None,
) -> None:
    txn.execute(
        f"INSERT INTO local_media ({_LOCAL_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, FALSE, ?)",
        (
            media_id,
            user_id,
            content.content_type,
            content.upload_name,
            content.size,
            content.sha256,
            now,
            now,
            url_cache,
        ),
    )


def _create_pending_media_txn(
    txn: Txn,
    media_id: str,
    user_id: str,
    now: int,
    expires_ts: int,
    max_pending: int,
) -> bool:
    txn.execute(
        "SELECT COUNT(*) FROM local_media WHERE user_id = ? AND upload_ts IS NULL"
        " AND unused_expires_ts > ?",
        (user_id, now),
    )
    row = txn.fetchone()
    if row is not None and int(row[0]) >= max_pending:
        return False
    txn.execute(
        "INSERT INTO local_media (media_id, user_id, created_ts, unused_expires_ts)"
        " VALUES (?, ?, ?, ?)",
        (media_id, user_id, now, expires_ts),
    )
    return True


def _complete_pending_upload_txn(
    txn: Txn, media_id: str, user_id: str, content: UploadedContent, now: int
) -> PendingUploadResult:
    txn.execute(
        "SELECT user_id, upload_ts, unused_expires_ts FROM local_media"
        " WHERE media_id = ?" + txn.engine.for_update,
        (media_id,),
    )
    row = txn.fetchone()
    if row is None:
        return PendingUploadResult.NOT_FOUND
    owner, upload_ts, expires_ts = row
    if upload_ts is not None:
        return PendingUploadResult.ALREADY_UPLOADED
    if owner != user_id:
        return PendingUploadResult.FORBIDDEN
    if expires_ts is not None and int(expires_ts) <= now:
        return PendingUploadResult.EXPIRED
    txn.execute(
        "UPDATE local_media SET content_type = ?, upload_name = ?, size = ?,"
        " sha256 = ?, upload_ts = ?, unused_expires_ts = NULL"
        " WHERE media_id = ? AND upload_ts IS NULL",
        (
            content.content_type,
            content.upload_name,
            content.size,
            content.sha256,
            now,
            media_id,
        ),
    )
    if txn.rowcount == 0:
        return PendingUploadResult.ALREADY_UPLOADED
    return PendingUploadResult.OK


def _get_local_media_txn(txn: Txn, media_id: str) -> LocalMedia | None:
    txn.execute(
        f"SELECT {_LOCAL_COLUMNS} FROM local_media WHERE media_id = ?", (media_id,)
    )
    row = txn.fetchone()
    return None if row is None else _local(row)


def _set_quarantined_txn(txn: Txn, media_id: str, value: bool) -> bool:
    txn.execute(
        "UPDATE local_media SET quarantined = ? WHERE media_id = ?", (value, media_id)
    )
    return txn.rowcount > 0


def _get_remote_media_txn(txn: Txn, origin: str, media_id: str) -> RemoteMedia | None:
    txn.execute(
        f"SELECT {_REMOTE_COLUMNS} FROM remote_media_cache"
        " WHERE origin = ? AND media_id = ?",
        (origin, media_id),
    )
    row = txn.fetchone()
    return None if row is None else _remote(row)


def _store_remote_media_txn(txn: Txn, m: RemoteMedia) -> None:
    txn.execute(
        f"INSERT INTO remote_media_cache ({_REMOTE_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (origin, media_id) DO UPDATE SET"
        " content_type = excluded.content_type, upload_name = excluded.upload_name,"
        " size = excluded.size, sha256 = excluded.sha256,"
        " last_access_ts = excluded.last_access_ts",
        (
            m.origin,
            m.media_id,
            m.content_type,
            m.upload_name,
            m.size,
            m.sha256,
            m.created_ts,
            m.last_access_ts,
            m.quarantined,
        ),
    )


def _touch_remote_media_txn(txn: Txn, origin: str, media_id: str, now: int) -> None:
    txn.execute(
        "UPDATE remote_media_cache SET last_access_ts = ?"
        " WHERE origin = ? AND media_id = ? AND last_access_ts < ?",
        (now, origin, media_id, now),
    )


def _get_thumbnail_txn(
    txn: Txn, origin: str, media_id: str, width: int, height: int, method: str
) -> Thumbnail | None:
    txn.execute(
        "SELECT width, height, method, content_type, size, sha256 FROM media_thumbnails"
        " WHERE origin = ? AND media_id = ? AND width = ? AND height = ? AND method = ?"
        " ORDER BY content_type",
        (origin, media_id, width, height, method),
    )
    row = txn.fetchone()
    if row is None:
        return None
    w, h, m, ctype, size, sha = row
    return Thumbnail(int(w), int(h), str(m), str(ctype), int(size), str(sha))


def _store_thumbnail_txn(txn: Txn, origin: str, media_id: str, t: Thumbnail) -> None:
    txn.execute(
        "INSERT INTO media_thumbnails"
        " (origin, media_id, width, height, method, content_type, size, sha256)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            origin,
            media_id,
            t.width,
            t.height,
            t.method,
            t.content_type,
            t.size,
            t.sha256,
        ),
    )


def _get_url_preview_txn(txn: Txn, url: str, now: int) -> str | None:
    txn.execute(
        "SELECT og_json FROM url_previews WHERE url = ? AND expires_ts > ?", (url, now)
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _store_url_preview_txn(
    txn: Txn, url: str, og_json: str, now: int, expires_ts: int
) -> None:
    txn.execute(
        "INSERT INTO url_previews (url, og_json, fetched_ts, expires_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET"
        " og_json = excluded.og_json, fetched_ts = excluded.fetched_ts,"
        " expires_ts = excluded.expires_ts",
        (url, og_json, now, expires_ts),
    )


def _delete_expired_url_previews_txn(txn: Txn, now: int) -> int:
    txn.execute("DELETE FROM url_previews WHERE expires_ts <= ?", (now,))
    return txn.rowcount


def _delete_thumbnails_txn(txn: Txn, origin: str, media_id: str) -> list[str]:
    txn.execute(
        "SELECT sha256 FROM media_thumbnails WHERE origin = ? AND media_id = ?",
        (origin, media_id),
    )
    hashes = [str(r[0]) for r in txn.fetchall()]
    txn.execute(
        "DELETE FROM media_thumbnails WHERE origin = ? AND media_id = ?",
        (origin, media_id),
    )
    return hashes


def _delete_url_cache_media_txn(txn: Txn, ts: int) -> list[str]:
    txn.execute(
        "SELECT media_id, sha256 FROM local_media"
        " WHERE url_cache IS NOT NULL AND created_ts < ?",
        (ts,),
    )
    rows = txn.fetchall()
    hashes: list[str] = []
    for media_id, sha in rows:
        if sha is not None:
            hashes.append(str(sha))
        hashes.extend(_delete_thumbnails_txn(txn, LOCAL_ORIGIN, str(media_id)))
        txn.execute("DELETE FROM local_media WHERE media_id = ?", (media_id,))
    return sorted(set(hashes))


def _delete_remote_media_txn(txn: Txn, ts: int) -> list[str]:
    txn.execute(
        "SELECT origin, media_id, sha256 FROM remote_media_cache"
        " WHERE last_access_ts < ?",
        (ts,),
    )
    rows = txn.fetchall()
    hashes: list[str] = []
    for origin, media_id, sha in rows:
        hashes.append(str(sha))
        hashes.extend(_delete_thumbnails_txn(txn, str(origin), str(media_id)))
        txn.execute(
            "DELETE FROM remote_media_cache WHERE origin = ? AND media_id = ?",
            (origin, media_id),
        )
    return sorted(set(hashes))


def _delete_expired_pending_txn(txn: Txn, now: int) -> int:
    txn.execute(
        "DELETE FROM local_media WHERE upload_ts IS NULL AND unused_expires_ts <= ?",
        (now,),
    )
    return txn.rowcount


def _is_sha256_referenced_txn(txn: Txn, sha256: str) -> bool:
    for table in ("local_media", "remote_media_cache", "media_thumbnails"):
        txn.execute(f"SELECT 1 FROM {table} WHERE sha256 = ? LIMIT 1", (sha256,))
        if txn.fetchone() is not None:
            return True
    return False
