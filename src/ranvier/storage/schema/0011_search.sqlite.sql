-- Full-text search of room events (POST /search), SQLite: FTS5 (bundled with CPython's
-- sqlite3). `event_search` holds one row per indexed key of an event; its `id` is the
-- rowid of the matching `event_search_fts` row, so redactions delete both by key.
CREATE TABLE event_search (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    -- 'content.body', 'content.name' or 'content.topic'.
    key TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX event_search_event_idx ON event_search (event_id);
CREATE INDEX event_search_room_idx ON event_search (room_id, stream_ordering);
CREATE VIRTUAL TABLE event_search_fts USING fts5(value, tokenize = 'porter unicode61');
