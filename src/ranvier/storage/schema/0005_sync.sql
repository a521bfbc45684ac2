-- Per-user and ephemeral data read by /sync (issue #5). Typing lives in memory only.
-- Every table carrying a `stream_id` is one stream of the sync token: rows are found by
-- "stream_id > since AND stream_id <= now", so each has an index leading with its key.

-- Read receipts. `thread_id` '' is the unthreaded receipt ("main" is a real thread).
-- `event_stream_ordering` is the receipted event's position, for unread counts.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    event_id TEXT NOT NULL,
    event_stream_ordering BIGINT NOT NULL,
    data TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream_idx ON receipts (stream_id);
CREATE INDEX receipts_user_idx ON receipts (user_id, room_id);

-- Account data, global (room_id '') and per room; tags are the `m.tag` room entry.
-- A deleted entry keeps its row with content '{}' so that sync can report the deletion.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL DEFAULT '',
    data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_stream_idx ON account_data (user_id, stream_id);

-- Sync filters; IDs count per user. Identical JSON reuses its ID (clients re-upload the
-- same filter on every start).
CREATE TABLE user_filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Presence, one row per user.
CREATE TABLE presence (
    user_id TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    currently_active BOOLEAN NOT NULL DEFAULT FALSE,
    stream_id BIGINT NOT NULL
);
CREATE INDEX presence_stream_idx ON presence (stream_id);

-- To-device messages waiting for a device; deleted once the device syncs past them.
-- A message sent to `*` gets one row per device, all with the same stream_id.
CREATE TABLE device_inbox (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    message_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- Transaction IDs of sendToDevice, so a retried request is not delivered twice.
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
CREATE INDEX to_device_txns_ts_idx ON to_device_txns (created_ts);

-- Users whose device list (devices, device keys, cross-signing keys) changed.
CREATE TABLE device_lists_stream (
    stream_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX device_lists_stream_user_idx ON device_lists_stream (user_id, stream_id);

-- High-water marks of streams whose rows get deleted (the device inbox empties as devices
-- sync): a restart must never hand out a position a client has already seen.
CREATE TABLE sync_stream_positions (
    stream TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO sync_stream_positions (stream, position) VALUES ('to_device', 0);
