-- Rooms, events, the event graph, room state (state groups), current state, memberships,
-- aliases and the room directory. See docs/architecture.md, "Events and room state".
--
-- Booleans are BOOLEAN on both engines; always bind Python bools, never 0/1.

-- One row per room this server knows (created here or joined).
CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT,
    -- Published in this server's public room directory.
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);
CREATE INDEX rooms_public_idx ON rooms (is_public);

-- Every event, stored once: the PDU JSON exactly as signed, plus the columns queries need.
-- `stream_ordering` is the global, increasing position of the events stream (sync tokens);
-- readers only read up to the allocator's current token (storage/stream_ids.py).
CREATE TABLE events (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    type TEXT NOT NULL,
    -- NULL for non-state events ('' is a valid state key).
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    received_ts BIGINT NOT NULL,
    -- Outliers: known but not part of the room's timeline (no state computed for them).
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    -- Set when the event failed auth: kept so the DAG has no holes, never served.
    rejected_reason TEXT,
    -- Passed auth against the state before it but not the current state: never served.
    soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
    -- The redaction event that applies to this event, if any.
    redacted_by TEXT,
    -- For state events: the event this one replaced in the room state (prev_content).
    replaces_state TEXT,
    -- Local sends: the client's transaction ID and device, for idempotent PUTs and the
    -- `unsigned.transaction_id` echo to that device. device_id is '' for device-less tokens.
    txn_id TEXT,
    device_id TEXT,
    contains_url BOOLEAN NOT NULL DEFAULT FALSE,
    json TEXT NOT NULL
);
CREATE INDEX events_room_stream_idx ON events (room_id, stream_ordering);
CREATE INDEX events_room_topo_idx ON events (room_id, depth, stream_ordering);
CREATE INDEX events_room_ts_idx ON events (room_id, origin_server_ts);
CREATE UNIQUE INDEX events_txn_idx ON events (room_id, sender, device_id, txn_id)
    WHERE txn_id IS NOT NULL;

-- The DAG: prev_events and auth_events edges.
CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev_idx ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

-- The room's forward extremities: events nobody references as a prev_event yet.
CREATE TABLE event_forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- Redaction events and their targets (the target may arrive after its redaction).
CREATE TABLE redactions (
    event_id TEXT PRIMARY KEY,
    redacts TEXT NOT NULL,
    room_id TEXT NOT NULL
);
CREATE INDEX redactions_redacts_idx ON redactions (redacts);

-- Room state as state groups: a group is either a snapshot (prev_group NULL, entries are
-- the whole state) or a delta on prev_group (entries are the changed keys; event_id NULL
-- removes a key). chain_length counts deltas back to the snapshot and is capped, so a
-- read walks a bounded chain. Group IDs are allocated by the state store.
CREATE TABLE state_groups (
    id BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT,
    chain_length INTEGER NOT NULL
);

CREATE TABLE state_group_entries (
    state_group BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (state_group, type, state_key)
);

-- State at each (non-outlier) event: before it and after it (equal for non-state events).
-- NULL state_group_before means the empty state (the create event).
CREATE TABLE event_state_groups (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    state_group_before BIGINT,
    state_group_after BIGINT NOT NULL
);

-- The room's current state, resolved over its forward extremities.
CREATE TABLE current_state_events (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Every change of current state, at the stream position of the event that caused it
-- (event_id NULL: the key was removed by state resolution).
CREATE TABLE current_state_delta_stream (
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    prev_event_id TEXT
);
CREATE INDEX current_state_delta_stream_idx ON current_state_delta_stream (stream_ordering);
CREATE INDEX current_state_delta_room_idx
    ON current_state_delta_stream (room_id, stream_ordering);

-- History of membership changes in current state, per user (sync: "rooms where X was
-- joined/invited/left since position P").
CREATE TABLE room_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    sender TEXT NOT NULL,
    prev_membership TEXT,
    PRIMARY KEY (room_id, user_id, stream_ordering)
);
CREATE INDEX room_memberships_user_idx ON room_memberships (user_id, stream_ordering);

-- Each user's current membership per room (mirrors the member keys of current state).
CREATE TABLE current_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    -- POST /forget: hidden from the user's room lists until their membership changes.
    forgotten BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX current_memberships_user_idx ON current_memberships (user_id, membership);
CREATE INDEX current_memberships_room_idx ON current_memberships (room_id, membership);

-- Local room aliases (#alias:our.server).
CREATE TABLE room_aliases (
    room_alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX room_aliases_room_idx ON room_aliases (room_id);
