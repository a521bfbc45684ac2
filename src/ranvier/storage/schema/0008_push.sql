-- Push notifications (spec: C-S API > Modules > Push Notifications).

-- A user's push rules: one JSON document holding their own rules and their changes
-- (enabled, actions) to the server-default rules. Users without a row have only the
-- defaults. Read for every room member on every event, so one row per user.
CREATE TABLE push_rules (
    user_id TEXT NOT NULL PRIMARY KEY,
    rules_json TEXT NOT NULL
);

-- What push rules decided for each local user an event notifies: the source of unread
-- notification counts (everything after the user's read receipts in the room or thread),
-- of /notifications and of what pushers deliver. `thread_id` is 'main' or a thread root.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    actions TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_room_idx
    ON event_push_actions (user_id, room_id, stream_ordering);
CREATE INDEX event_push_actions_user_idx ON event_push_actions (user_id, stream_ordering);
CREATE INDEX event_push_actions_ts_idx ON event_push_actions (received_ts);

-- Pushers (POST /pushers/set). `last_stream_ordering` is how far the pusher has
-- delivered; `failing_since` is set while deliveries fail (retried with backoff).
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    last_stream_ordering BIGINT NOT NULL,
    last_success_ts BIGINT,
    failing_since BIGINT,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_key_idx ON pushers (app_id, pushkey);
