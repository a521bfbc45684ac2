-- OpenID tokens (POST /user/{userId}/openid/request_token), which other services check
-- through GET /_matrix/federation/v1/openid/userinfo. Only the SHA-256 of each token is
-- kept, with its expiry; expired rows are removed when new tokens are issued.
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry_idx ON openid_tokens (expires_ts);
