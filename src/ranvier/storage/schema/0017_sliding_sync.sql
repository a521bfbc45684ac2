-- Simplified sliding sync (MSC4186) connections: what each connection has been sent,
-- so a restart (or another process) does not make every client start over.
-- storage/stores/sliding_sync.py explains the position chain.
CREATE TABLE sliding_sync_connections (
    connection_key {{autoincrement_pk}},
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    -- The last position a request came back with (the client has seen it).
    acked_position BIGINT NOT NULL DEFAULT 0,
    created_ts BIGINT NOT NULL,
    last_used_ts BIGINT NOT NULL
);
CREATE UNIQUE INDEX sliding_sync_connections_idx
    ON sliding_sync_connections (user_id, device_id, conn_id);
CREATE INDEX sliding_sync_connections_used_idx ON sliding_sync_connections (last_used_ts);

-- One row per response handed out (the `pos`), with the stream token it covers and
-- the connection's sticky data (room subscriptions, list counts) as JSON.
CREATE TABLE sliding_sync_positions (
    position {{autoincrement_pk}},
    connection_key BIGINT NOT NULL
        REFERENCES sliding_sync_connections (connection_key) ON DELETE CASCADE,
    stream_token TEXT NOT NULL,
    data TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX sliding_sync_positions_conn_idx ON sliding_sync_positions (connection_key);

-- Per room, what the connection was sent, written only by the response that changed
-- it: the room's row at the newest position at or before a `pos` is its state there.
CREATE TABLE sliding_sync_rooms (
    connection_key BIGINT NOT NULL
        REFERENCES sliding_sync_connections (connection_key) ON DELETE CASCADE,
    room_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    -- 'live': everything up to the position's token was sent; 'previously': sent up
    -- to `last_stream`, later events not yet.
    status TEXT NOT NULL,
    last_stream BIGINT NOT NULL,
    membership TEXT NOT NULL,
    -- JSON: the timeline_limit and required_state last used, lazy members sent.
    config TEXT NOT NULL,
    PRIMARY KEY (connection_key, room_id, position)
);
CREATE INDEX sliding_sync_rooms_position_idx ON sliding_sync_rooms (connection_key, position);
