"""Media repository metadata (schema 0006), on both engines."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.stores.media import (
    LOCAL_ORIGIN,
    MediaStore,
    PendingUploadResult,
    RemoteMedia,
    Thumbnail,
    UploadedContent,
)

ALICE = "@alice:test"
BOB = "@bob:test"
CONTENT = UploadedContent("image/png", "cat.png", 1234, "a" * 64)


async def test_local_media_round_trip(database: Database) -> None:
    store = MediaStore(database)
    assert await store.get_local_media("m1") is None
    await store.store_local_media("m1", ALICE, CONTENT, 1000)
    row = await store.get_local_media("m1")
    assert row is not None
    assert (row.user_id, row.content_type, row.upload_name) == (
        ALICE,
        "image/png",
        "cat.png",
    )
    assert (row.size, row.sha256, row.created_ts, row.upload_ts) == (
        1234,
        "a" * 64,
        1000,
        1000,
    )
    assert row.is_uploaded
    assert not row.quarantined
    assert await store.set_local_media_quarantined("m1", True)
    row = await store.get_local_media("m1")
    assert row is not None
    assert row.quarantined
    assert not await store.set_local_media_quarantined("nope", True)


async def test_pending_uploads(database: Database) -> None:
    store = MediaStore(database)
    assert await store.create_pending_media("p1", ALICE, 1000, 5000, max_pending=2)
    assert await store.create_pending_media("p2", ALICE, 1000, 5000, max_pending=2)
    assert not await store.create_pending_media("p3", ALICE, 1000, 5000, max_pending=2)
    # Expired reservations do not count against the limit.
    assert await store.create_pending_media("p3", ALICE, 6000, 9000, max_pending=2)
    row = await store.get_local_media("p1")
    assert row is not None
    assert not row.is_uploaded
    assert row.unused_expires_ts == 5000

    complete = store.complete_pending_upload
    assert await complete("p1", BOB, CONTENT, 2000) is PendingUploadResult.FORBIDDEN
    assert await complete("zz", ALICE, CONTENT, 2000) is PendingUploadResult.NOT_FOUND
    assert await complete("p2", ALICE, CONTENT, 5000) is PendingUploadResult.EXPIRED
    assert await complete("p1", ALICE, CONTENT, 2000) is PendingUploadResult.OK
    assert (
        await complete("p1", ALICE, CONTENT, 2001)
        is PendingUploadResult.ALREADY_UPLOADED
    )
    row = await store.get_local_media("p1")
    assert row is not None
    assert row.is_uploaded
    assert (row.upload_ts, row.unused_expires_ts, row.sha256) == (2000, None, "a" * 64)

    # p2 expired at 5000; p3 is live until 9000.
    assert await store.delete_expired_pending_media(7000) == 1
    assert await store.get_local_media("p2") is None
    assert await store.get_local_media("p3") is not None
    assert await store.get_local_media("p1") is not None


async def test_remote_cache_thumbnails_and_expiry(database: Database) -> None:
    store = MediaStore(database)
    remote = RemoteMedia("r.test", "abc", "image/jpeg", None, 10, "b" * 64, 100, 100)
    await store.store_remote_media(remote)
    assert await store.get_remote_media("r.test", "abc") == remote
    assert await store.get_remote_media("r.test", "other") is None
    await store.touch_remote_media("r.test", "abc", 500)
    touched = await store.get_remote_media("r.test", "abc")
    assert touched is not None
    assert touched.last_access_ts == 500

    thumb = Thumbnail(32, 32, "crop", "image/jpeg", 99, "c" * 64)
    await store.store_thumbnail("r.test", "abc", thumb)
    await store.store_thumbnail("r.test", "abc", thumb)  # idempotent
    assert await store.get_thumbnail("r.test", "abc", 32, 32, "crop") == thumb
    assert await store.get_thumbnail("r.test", "abc", 32, 32, "scale") is None
    assert await store.get_thumbnail(LOCAL_ORIGIN, "abc", 32, 32, "crop") is None

    assert await store.is_sha256_referenced("b" * 64)
    assert await store.is_sha256_referenced("c" * 64)
    assert await store.delete_remote_media_before(500) == []
    assert sorted(await store.delete_remote_media_before(501)) == ["b" * 64, "c" * 64]
    assert await store.get_remote_media("r.test", "abc") is None
    assert await store.get_thumbnail("r.test", "abc", 32, 32, "crop") is None
    assert not await store.is_sha256_referenced("b" * 64)
    assert not await store.is_sha256_referenced("c" * 64)


async def test_shared_hash_stays_referenced(database: Database) -> None:
    store = MediaStore(database)
    sha = "d" * 64
    shared = UploadedContent("image/png", None, 5, sha)
    await store.store_local_media("kept", ALICE, shared, 100)
    await store.store_local_media(
        "img", ALICE, shared, 100, url_cache="https://x/i.png"
    )
    await store.store_remote_media(
        RemoteMedia("r.test", "x", "image/png", None, 5, sha, 1, 1)
    )
    assert await store.delete_url_cache_media_before(100) == []
    assert await store.delete_url_cache_media_before(101) == [sha]
    assert await store.get_local_media("img") is None
    assert await store.get_local_media("kept") is not None
    assert await store.delete_remote_media_before(2) == [sha]
    # The upload still uses it.
    assert await store.is_sha256_referenced(sha)


async def test_url_previews(database: Database) -> None:
    store = MediaStore(database)
    url = "https://example.com/a"
    assert await store.get_url_preview(url, 0) is None
    await store.store_url_preview(url, '{"og:title":"A"}', 100, 200)
    assert await store.get_url_preview(url, 150) == '{"og:title":"A"}'
    assert await store.get_url_preview(url, 200) is None
    await store.store_url_preview(url, '{"og:title":"B"}', 300, 400)
    assert await store.get_url_preview(url, 350) == '{"og:title":"B"}'
    await store.store_url_preview("https://example.com/b", "{}", 300, 1000)
    assert await store.delete_expired_url_previews(400) == 1
    assert await store.get_url_preview("https://example.com/b", 500) == "{}"
