"""Media bytes on disk, named by SHA-256 (content addressing).

    <store_path>/content/ab/cd/abcd…   one file per distinct content, shared by every
                                        upload, remote copy or thumbnail with that hash
    <store_path>/tmp/                  uploads being received

Files are written to `tmp/` while hashing, then renamed into place (atomic on one file
system), so a reader never sees half a file. Disk I/O runs in worker threads. Whoever
commits a file and records it in the database, or checks that nothing records it and
deletes it, holds `lock(sha256)` across both steps, so cleanup can never delete a file
an upload has just started using.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ranvier.util.keyed_lock import KeyedLock


class ContentTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"content exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ServedFile:
    """A stored file and how to present it (download or thumbnail)."""

    path: Path
    content_type: str
    size: int
    upload_name: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class PendingFile:
    """Bytes received and hashed into `tmp/`, not yet committed."""

    tmp_path: Path
    sha256: str
    size: int


class MediaFiles:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._content = root / "content"
        self._tmp = root / "tmp"
        self._locks = KeyedLock()

    def path_of(self, sha256: str) -> Path:
        return self._content / sha256[0:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    @contextlib.asynccontextmanager
    async def lock(self, sha256: str) -> AsyncIterator[None]:
        async with self._locks.lock(sha256):
            yield

    def _new_tmp(self) -> tuple[Path, IO[bytes]]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        path = self._tmp / secrets.token_hex(16)
        return path, path.open("xb")

    async def _open_tmp(self) -> tuple[Path, IO[bytes]]:
        opening = asyncio.ensure_future(asyncio.to_thread(self._new_tmp))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread still opens the file: close and remove it when it has.
            opening.add_done_callback(_abandon_opened)
            raise

    async def receive(self, chunks: AsyncIterable[bytes], limit: int) -> PendingFile:
        """Stream `chunks` to a temporary file, hashing as it goes; more than `limit`
        bytes raise `ContentTooLargeError` (and nothing is kept). Cancellation at any
        point leaves no open file and no temporary file behind."""
        path, fh = await self._open_tmp()
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ContentTooLargeError(limit)
                digest.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_abandon, path, fh))
            raise
        await asyncio.shield(asyncio.to_thread(fh.close))
        return PendingFile(path, digest.hexdigest(), size)

    async def receive_bytes(self, data: bytes) -> PendingFile:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.receive(one(), len(data))

    async def commit(self, pending: PendingFile) -> Path:
        """Move a received file into place (call under `lock(pending.sha256)`)."""
        return await asyncio.to_thread(self._commit, pending)

    def _commit(self, pending: PendingFile) -> Path:
        final = self.path_of(pending.sha256)
        if final.is_file():
            pending.tmp_path.unlink(missing_ok=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(pending.tmp_path, final)
        return final

    async def discard(self, pending: PendingFile) -> None:
        await asyncio.to_thread(pending.tmp_path.unlink, missing_ok=True)

    async def delete(self, sha256: str) -> None:
        """Remove a file (call under `lock(sha256)` after checking nothing uses it)."""
        await asyncio.to_thread(self.path_of(sha256).unlink, missing_ok=True)


def _abandon(path: Path, fh: IO[bytes]) -> None:
    fh.close()
    path.unlink(missing_ok=True)


def _abandon_opened(opening: asyncio.Future[tuple[Path, IO[bytes]]]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return
    _abandon(*opening.result())


async def open_for_reading(path: Path) -> IO[bytes]:
    """Open a stored file from a worker thread; cancellation never leaks the handle."""
    opening: asyncio.Future[IO[bytes]] = asyncio.ensure_future(
        asyncio.to_thread(_open_binary, path)
    )
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _open_binary(path: Path) -> IO[bytes]:
    return path.open("rb")


def _close_opened(opening: asyncio.Future[IO[bytes]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
