"""Expiry of the media caches (design: caches are cleaned up from day one).

Each pass drops expired URL-preview answers, preview images older than
`url_cache_media_lifetime_ms`, cached remote media nobody read for
`remote_media_lifetime_ms` (with their thumbnails), and expired reservations of
`/create`; then deletes each file whose last row went, if nothing (a concurrent upload
of the same bytes, say) uses it by the time its hash lock is held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from ranvier.services.media.files import MediaFiles
from ranvier.storage.stores.media import MediaStore
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS: Final = 3600.0


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    remote_media_lifetime_ms: int
    url_cache_media_lifetime_ms: int = 2 * 24 * 3600 * 1000
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS


@dataclass(frozen=True, slots=True)
class CleanupResult:
    previews: int
    pending: int
    files: int


class MediaCleaner:
    def __init__(
        self, store: MediaStore, files: MediaFiles, clock: Clock, policy: CleanupPolicy
    ) -> None:
        self._store = store
        self._files = files
        self._clock = clock
        self._policy = policy

    async def cleanup_once(self) -> CleanupResult:
        now = self._clock.time_msec()
        previews = await self._store.delete_expired_url_previews(now)
        pending = await self._store.delete_expired_pending_media(now)
        hashes = set(
            await self._store.delete_url_cache_media_before(
                now - self._policy.url_cache_media_lifetime_ms
            )
        )
        hashes.update(
            await self._store.delete_remote_media_before(
                now - self._policy.remote_media_lifetime_ms
            )
        )
        deleted = 0
        for sha in sorted(hashes):
            async with self._files.lock(sha):
                if not await self._store.is_sha256_referenced(sha):
                    await self._files.delete(sha)
                    deleted += 1
        if previews or pending or deleted:
            logger.info(
                "media cleanup: %d previews, %d reservations, %d files",
                previews,
                pending,
                deleted,
            )
        return CleanupResult(previews, pending, deleted)

    async def run(self) -> None:
        """The supervised loop: one pass, then one every `interval_seconds`."""
        while True:
            try:
                await self.cleanup_once()
            except Exception:
                logger.exception("media cleanup failed")
            await self._clock.sleep(self._policy.interval_seconds)
