-- Users who deactivated with `erase: true` (POST /account/deactivate): their events are
-- served redacted to users who were not joined when they were sent, and to every other
-- server (storage/stores/erasure.py, as Synapse's `user_erasure`).
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY,
    erased_ts BIGINT NOT NULL
);
