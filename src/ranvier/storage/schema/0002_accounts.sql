-- Local accounts (issue #4): users, devices, access/refresh/login tokens, registration
-- tokens, user-interactive-auth sessions and profiles.
--
-- Tokens are 256-bit random strings: only their sha256 is stored, so a leaked database
-- does not leak usable credentials. Booleans are BOOLEAN on both engines (SQLite stores
-- 0/1; readers wrap them in bool()).

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    -- NULL: no password login (guests, deactivated accounts).
    password_hash TEXT,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ip TEXT,
    last_seen_ts BIGINT,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- A refresh token is replaced by `next_token_id` on /refresh; the old row is deleted once
-- the replacement (or the access token issued with it) is first used.
CREATE TABLE refresh_tokens (
    id {{autoincrement_pk}},
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    next_token_id BIGINT,
    expires_ts BIGINT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_device_idx ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_next_idx ON refresh_tokens (next_token_id);

CREATE TABLE access_tokens (
    id {{autoincrement_pk}},
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- Set for tokens issued with a refresh token; such tokens expire.
    refresh_token_id BIGINT,
    expires_ts BIGINT,
    -- Whether the token was used since it was issued (retires the refresh token it
    -- replaced, see refresh_tokens).
    used BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);
CREATE INDEX access_tokens_device_idx ON access_tokens (user_id, device_id);
CREATE INDEX access_tokens_refresh_idx ON access_tokens (refresh_token_id);

-- Single-use `m.login.token` tokens from POST /login/get_token.
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX login_tokens_expiry_idx ON login_tokens (expires_ts);

-- Operator-issued registration tokens (`ranvier registration-token`). `pending` counts
-- UIA sessions that presented the token but have not finished registering yet.
CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_ts BIGINT,
    created_ts BIGINT NOT NULL
);

-- User-interactive auth sessions. `completed` and `data` are JSON objects.
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    method TEXT NOT NULL,
    user_id TEXT,
    completed TEXT NOT NULL,
    data TEXT NOT NULL,
    -- The registration token this session holds a `pending` use of, if any.
    registration_token TEXT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX uia_sessions_created_idx ON uia_sessions (created_ts);

-- Profile fields (displayname, avatar_url, m.tz and custom keys), value as JSON.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);
