-- Account flags the admin API sets (Synapse's admin API; spec v1.18 lock/suspend):
-- locked accounts get 401 M_USER_LOCKED on every request, suspended ones may only read,
-- shadow-banned ones see their events accepted but nobody else does.
ALTER TABLE users ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN shadow_banned BOOLEAN NOT NULL DEFAULT FALSE;

-- Rooms an admin blocked (PUT /_synapse/admin/v1/rooms/{roomId}/block, or a v2 delete
-- with block): the blocking admin, as Synapse's `blocked_rooms`.
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
);
