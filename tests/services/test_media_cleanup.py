"""The media cache cleanup: expired previews, preview images, unread remote media and
their files go; files still used by an upload stay. On both engines, fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ranvier.services.media.cleanup import CleanupPolicy, MediaCleaner
from ranvier.services.media.files import ContentTooLargeError, MediaFiles
from ranvier.storage.database import Database
from ranvier.storage.stores.media import (
    MediaStore,
    RemoteMedia,
    Thumbnail,
    UploadedContent,
)
from ranvier.util.clock import FakeClock
from ranvier.util.supervisor import TaskSupervisor

HOUR_MS = 3600 * 1000


async def _file(files: MediaFiles, data: bytes) -> str:
    pending = await files.receive_bytes(data)
    async with files.lock(pending.sha256):
        await files.commit(pending)
    return pending.sha256


async def test_cleanup_expires_caches_and_files(
    database: Database, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = MediaStore(database)
    files = MediaFiles(tmp_path / "media")
    cleaner = MediaCleaner(
        store,
        files,
        clock,
        CleanupPolicy(
            remote_media_lifetime_ms=10 * HOUR_MS, url_cache_media_lifetime_ms=HOUR_MS
        ),
    )
    start = clock.time_msec()
    remote_sha = await _file(files, b"remote")
    thumb_sha = await _file(files, b"thumb")
    shared_sha = await _file(files, b"shared")
    preview_sha = await _file(files, b"preview image")
    await store.store_remote_media(
        RemoteMedia("r.test", "old", "image/png", None, 6, remote_sha, start, start)
    )
    await store.store_thumbnail(
        "r.test", "old", Thumbnail(32, 32, "crop", "image/png", 5, thumb_sha)
    )
    await store.store_remote_media(
        RemoteMedia("r.test", "shared", "text/plain", None, 6, shared_sha, start, start)
    )
    await store.store_local_media(
        "upload", "@a:test", UploadedContent("text/plain", None, 6, shared_sha), start
    )
    await store.store_local_media(
        "preview",
        "@a:test",
        UploadedContent("image/png", None, 13, preview_sha),
        start,
        url_cache="https://example.com/i.png",
    )
    await store.store_url_preview("https://example.com/", "{}", start, start + HOUR_MS)
    await store.create_pending_media("pending", "@a:test", start, start + HOUR_MS, 5)

    nothing = await cleaner.cleanup_once()
    assert (nothing.previews, nothing.pending, nothing.files) == (0, 0, 0)

    clock.advance(2 * 3600)
    first = await cleaner.cleanup_once()
    assert (first.previews, first.pending, first.files) == (1, 1, 1)
    assert not files.exists(preview_sha)
    assert await store.get_local_media("preview") is None
    assert await store.get_local_media("pending") is None
    assert files.exists(remote_sha)

    # Reading remote media keeps it; the other copy expires with its thumbnail.
    clock.advance(9 * 3600)
    await store.touch_remote_media("r.test", "shared", clock.time_msec())
    clock.advance(2 * 3600)
    second = await cleaner.cleanup_once()
    assert second.files == 2
    assert not files.exists(remote_sha)
    assert not files.exists(thumb_sha)
    assert await store.get_remote_media("r.test", "old") is None
    assert await store.get_remote_media("r.test", "shared") is not None

    clock.advance(11 * 3600)
    third = await cleaner.cleanup_once()
    assert third.files == 0  # the upload still uses the bytes
    assert await store.get_remote_media("r.test", "shared") is None
    assert files.exists(shared_sha)


async def test_cleanup_loop_runs_under_the_supervisor(
    database: Database, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = MediaStore(database)
    cleaner = MediaCleaner(
        store,
        MediaFiles(tmp_path / "media"),
        clock,
        CleanupPolicy(remote_media_lifetime_ms=HOUR_MS, interval_seconds=60),
    )
    now = clock.time_msec()
    await store.store_url_preview("https://a/", "{}", now, now + 30_000)
    await store.store_url_preview("https://b/", "{}", now, now + 90_000)
    supervisor = TaskSupervisor()
    _ = supervisor.start("media-cleanup", cleaner.run())
    try:
        for _ in range(2):
            clock.advance(60)
            await asyncio.sleep(0.2)
        assert await store.get_url_preview("https://a/", 0) is None
        assert await store.get_url_preview("https://b/", 0) is None
    finally:
        await supervisor.shutdown()
    assert supervisor.running == 0


async def test_receive_enforces_the_limit(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 10

    pending = await files.receive(chunks(), 40)
    assert pending.size == 40
    with pytest.raises(ContentTooLargeError, match="39"):
        await files.receive(chunks(), 39)
    # Only the first (uncommitted) file remains in tmp/.
    assert [p.name for p in (tmp_path / "media" / "tmp").iterdir()] == [
        pending.tmp_path.name
    ]
    await files.discard(pending)
    assert list((tmp_path / "media" / "tmp").iterdir()) == []


async def test_cancelled_receive_leaves_nothing_behind(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")
    tmp_dir = tmp_path / "media" / "tmp"
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x"
        started.set()
        await asyncio.sleep(60)
        yield b"y"

    # Cancelled while streaming.
    task = asyncio.ensure_future(files.receive(slow(), 100))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_dir.iterdir()) == []

    # Cancelled while the temporary file is being opened in its thread.
    for _ in range(5):
        task = asyncio.ensure_future(files.receive(slow(), 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.3)
    assert list(tmp_dir.iterdir()) == []
