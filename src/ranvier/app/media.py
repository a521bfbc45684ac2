"""Wiring of the media repository: file store, metadata store, thumbnails, remote media
over federation, URL previews, the cache cleanup and the HTTP resources.

`build_media` constructs everything once. Remote media needs the federation client
(so the composition root builds media after federation) and is off when federation
is. URL previews exist only when `media.url_preview.enabled`. The outbound web
sessions are opened lazily and closed by `close()`; the cleanup loop runs under the
supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ranvier.api.federation.media import FederationMediaResource
from ranvier.api.http import Endpoint
from ranvier.api.media.resource import MediaResource
from ranvier.config.schema import HomeserverConfig
from ranvier.federation.dns import DnsResolver, SystemDnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.services.media.cleanup import CleanupPolicy, MediaCleaner
from ranvier.services.media.files import MediaFiles
from ranvier.services.media.preview import PreviewPolicy, UrlPreviewService
from ranvier.services.media.remote import (
    RawFederationClient,
    RemoteMediaCache,
    RemoteMediaFetcher,
)
from ranvier.services.media.repository import MediaPolicy, MediaRepository
from ranvier.services.media.thumbnails import ThumbnailPolicy, ThumbnailService
from ranvier.services.media.web import WebFetcher
from ranvier.storage.database import Database
from ranvier.storage.stores.media import MediaStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

_USER_AGENT = "Ranvier (media)"
_PREVIEW_USER_AGENT = "Mozilla/5.0 (compatible; Ranvier URL preview)"


@dataclass
class Media:
    store: MediaStore
    repository: MediaRepository
    previews: UrlPreviewService | None
    cleaner: MediaCleaner
    client_endpoints: list[Endpoint]
    media_endpoints: list[Endpoint]
    federation_endpoints: list[Endpoint]
    dns: DnsResolver
    fetchers: list[WebFetcher] = field(default_factory=list)
    # The content-addressed files, for the admin API's media deletion.
    files: MediaFiles | None = None

    async def close(self) -> None:
        for fetcher in self.fetchers:
            await fetcher.close()
        await self.dns.close()


def build_media(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    *,
    federation_client: RawFederationClient | None,
    random_id: Callable[[], str],
    dns: DnsResolver | None = None,
) -> Media:
    mc = config.media
    dns = dns or SystemDnsResolver()
    store = MediaStore(db)
    files = MediaFiles(mc.store_path)
    thumbnails = ThumbnailService(
        store, files, ThumbnailPolicy(max_source_bytes=mc.max_upload_size)
    )
    fetchers: list[WebFetcher] = []
    remote: RemoteMediaCache | None = None
    if federation_client is not None and config.federation.enabled:
        fed = config.federation
        location_fetcher = WebFetcher(
            IpRangeFilter(fed.ip_range_blocklist, fed.ip_range_allowlist),
            dns,
            user_agent=_USER_AGENT,
            timeout=60.0,
        )
        fetchers.append(location_fetcher)
        fetcher = RemoteMediaFetcher(
            federation_client, location_fetcher, max_bytes=mc.max_upload_size
        )
        remote = RemoteMediaCache(store, files, fetcher, clock)
    repository = MediaRepository(
        store,
        files,
        thumbnails,
        remote,
        clock,
        supervisor,
        MediaPolicy(config.server_name, mc.max_upload_size),
        random_id,
    )
    previews: UrlPreviewService | None = None
    if mc.url_preview.enabled:
        up = mc.url_preview
        preview_fetcher = WebFetcher(
            IpRangeFilter(up.ip_range_blocklist, up.ip_range_allowlist),
            dns,
            user_agent=_PREVIEW_USER_AGENT,
        )
        fetchers.append(preview_fetcher)
        previews = UrlPreviewService(
            store,
            preview_fetcher,
            repository,
            clock,
            PreviewPolicy(max_image_bytes=min(mc.max_upload_size, 10 << 20)),
        )
    cleaner = MediaCleaner(
        store,
        files,
        clock,
        CleanupPolicy(remote_media_lifetime_ms=mc.remote_media_lifetime * 1000),
    )
    _ = supervisor.start("media-cleanup", cleaner.run())
    resource = MediaResource(repository, previews)
    return Media(
        store=store,
        repository=repository,
        previews=previews,
        cleaner=cleaner,
        client_endpoints=resource.client_endpoints(),
        media_endpoints=resource.media_endpoints(),
        federation_endpoints=FederationMediaResource(repository).endpoints(),
        dns=dns,
        fetchers=fetchers,
        files=files,
    )
