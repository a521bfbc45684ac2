-- Foundation schema. `schema_version` itself is created by the migrator (migrations.py).
-- 0002 (accounts), 0003 (rooms/events) and 0004 (federation) are reserved for feature work.

-- Small server-wide settings that belong with the data rather than in the config file
-- (e.g. which server_name a database was created for).
CREATE TABLE kv_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
