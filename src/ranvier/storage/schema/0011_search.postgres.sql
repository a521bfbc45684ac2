-- Full-text search of room events (POST /search), PostgreSQL: an English `tsvector`
-- per indexed key of an event with a GIN index.
CREATE TABLE event_search (
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    -- 'content.body', 'content.name' or 'content.topic'.
    key TEXT NOT NULL,
    vector TSVECTOR NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX event_search_fts_idx ON event_search USING GIN (vector);
CREATE INDEX event_search_event_idx ON event_search (event_id);
CREATE INDEX event_search_room_idx ON event_search (room_id, stream_ordering);
