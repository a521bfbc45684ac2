-- Outbound federation reliability (workers/federation_sender.py,
-- services/federation/outbound_sender.py).

-- The room of each queued PDU: a destination's queue is bounded per room (catch-up
-- keeps only the newest PDUs of a room for a peer that has been down for long).
-- Rows queued before this delta have '' and are never trimmed.
ALTER TABLE federation_outbound_pdus ADD COLUMN room_id TEXT NOT NULL DEFAULT '';
CREATE INDEX federation_outbound_pdus_room_idx ON federation_outbound_pdus (room_id, pdu_id);

-- EDUs where only the latest matters (typing per room and user, presence per user)
-- carry a key: queueing one replaces the queued EDU of the same type and key.
ALTER TABLE federation_outbound_edus ADD COLUMN coalesce_key TEXT;

-- How far the events stream has been handed to the outbound queues, so that events
-- persisted just before a crash or shutdown are still queued after the restart.
CREATE TABLE federation_stream_positions (
    stream_name TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL
);
