-- OAuth 2.0 API (issue #13): the built-in authorization server.
--
-- Secrets (authorization codes, refresh tokens, device codes, browser session cookies)
-- are 256-bit random strings stored only as sha256, like access tokens. The access
-- tokens themselves live in `access_tokens` (0002), so every Client-Server endpoint
-- accepts them exactly like password-login tokens.

-- Dynamically registered clients (RFC 7591 / MSC2966); `metadata` is the validated
-- registration JSON as answered to the client.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);

-- One authorization request (GET /authorize) while the browser signs in and consents;
-- on consent it gets its single-use code. `exchanged_session_id` is set when the code
-- was redeemed: a replay revokes that session (RFC 6749 section 4.1.2).
CREATE TABLE oauth_authorization_requests (
    request_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT,
    nonce TEXT,
    response_mode TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    prompt TEXT,
    user_id TEXT,
    code_hash TEXT UNIQUE,
    code_expires_ts BIGINT,
    exchanged_session_id TEXT,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX oauth_authorization_requests_expiry_idx
    ON oauth_authorization_requests (expires_ts);

-- A grant: one client's access to one device of one user. `access_token_id` is the
-- `access_tokens` row issued last; when it is gone (logout, device deletion) the
-- session is over and its refresh tokens stop working.
CREATE TABLE oauth_sessions (
    session_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    access_token_id BIGINT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX oauth_sessions_device_idx ON oauth_sessions (user_id, device_id);

-- Refresh tokens rotate: a used one keeps its row with `consumed_ts` set, so that a
-- second use (a stolen copy) is recognised and ends the whole session.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    consumed_ts BIGINT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX oauth_refresh_tokens_session_idx ON oauth_refresh_tokens (session_id);

-- Device authorization grant (RFC 8628, MSC4341). `status`: pending, approved,
-- denied, exchanged.
CREATE TABLE oauth_device_grants (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT,
    last_poll_ts BIGINT,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX oauth_device_grants_expiry_idx ON oauth_device_grants (expires_ts);

-- Signed-in browsers on the authorization pages (a cookie holds the secret).
CREATE TABLE oauth_browser_sessions (
    session_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX oauth_browser_sessions_expiry_idx ON oauth_browser_sessions (expires_ts);

-- MSC4312: the user approved, on the account page, replacing their cross-signing keys;
-- an OAuth client's next `keys/device_signing/upload` before `expires_ts` needs no UIA.
CREATE TABLE oauth_cross_signing_resets (
    user_id TEXT PRIMARY KEY,
    expires_ts BIGINT NOT NULL
);

-- The RS256 key signing ID tokens (the `openid` scope), as a private JWK; generated on
-- first use. Not a hash: it must sign.
CREATE TABLE oauth_signing_keys (
    kid TEXT PRIMARY KEY,
    private_jwk TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
