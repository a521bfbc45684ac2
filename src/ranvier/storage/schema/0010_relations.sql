-- Event relationships (spec: C-S API > Forming relationships between events).
-- One row per stored, servable event whose content carries a valid `m.relates_to` with
-- a `rel_type`; filled when the event is persisted and deleted when it is redacted, so
-- aggregations (threads, edits, references) never count redacted relations.
CREATE TABLE event_relations (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    relates_to_id TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    -- `m.annotation` key (reactions); NULL for other relation types.
    aggregation_key TEXT,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX event_relations_parent_idx
    ON event_relations (relates_to_id, stream_ordering);
-- Thread lists: the threads of a room by latest activity.
CREATE INDEX event_relations_room_type_idx
    ON event_relations (room_id, rel_type, stream_ordering);
