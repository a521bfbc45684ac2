-- The media repository (issue: media). File bytes live on disk under media.store_path,
-- named by their SHA-256 (one file however many media IDs share the content); these
-- tables hold what the bytes are and who may see them.

-- Media uploaded here. A row with upload_ts NULL is an mxc:// URI reserved by
-- POST /_matrix/media/v1/create and not yet uploaded (it expires at unused_expires_ts).
-- url_cache: set for images downloaded for a URL preview, which the cleanup expires.
CREATE TABLE local_media (
    media_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    content_type TEXT,
    upload_name TEXT,
    size BIGINT,
    sha256 TEXT,
    created_ts BIGINT NOT NULL,
    upload_ts BIGINT,
    unused_expires_ts BIGINT,
    quarantined BOOLEAN NOT NULL DEFAULT FALSE,
    url_cache TEXT
);
CREATE INDEX local_media_sha256_idx ON local_media (sha256);
CREATE INDEX local_media_pending_idx ON local_media (user_id, upload_ts);
CREATE INDEX local_media_url_cache_idx ON local_media (url_cache, created_ts);

-- Copies of other servers' media, fetched on demand and expired after they have not
-- been read for media.remote_media_lifetime.
CREATE TABLE remote_media_cache (
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    upload_name TEXT,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    last_access_ts BIGINT NOT NULL,
    quarantined BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX remote_media_cache_sha256_idx ON remote_media_cache (sha256);
CREATE INDEX remote_media_cache_access_idx ON remote_media_cache (last_access_ts);

-- Thumbnails of local (origin '') and cached remote media, one per size and method.
CREATE TABLE media_thumbnails (
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (origin, media_id, width, height, method, content_type)
);
CREATE INDEX media_thumbnails_sha256_idx ON media_thumbnails (sha256);

-- URL previews: the latest OpenGraph answer per URL, served until expires_ts.
CREATE TABLE url_previews (
    url TEXT NOT NULL PRIMARY KEY,
    og_json TEXT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX url_previews_expires_idx ON url_previews (expires_ts);
