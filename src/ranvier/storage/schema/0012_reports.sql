-- Content reports from clients (POST /rooms/{roomId}/report[/{eventId}],
-- POST /users/{userId}/report), kept for moderators and a future admin API.
-- Exactly what was reported: an event (room_id + event_id), a room (room_id) or a
-- user (reported_user_id).
CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    reported_user_id TEXT,
    reason TEXT,
    score BIGINT,
    received_ts BIGINT NOT NULL
);
CREATE INDEX reports_received_idx ON reports (received_ts);
