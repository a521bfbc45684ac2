-- Federation transport (issue #6): remote server keys, the outbound per-destination
-- queues, destination backoff and inbound transaction de-duplication.

-- Remote servers' signing keys, per source (`from_server` = the server itself or the
-- notary that vouched for it). `valid_until_ts` is already capped at fetch + 7 days
-- (current keys) or is the key's expired_ts (old keys). `key_json` is the signed key
-- document the key came in: the notary endpoint serves those fetched directly.
CREATE TABLE federation_server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    from_server TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id, from_server)
);

-- Destinations backing off after failures; a row exists only while one is.
CREATE TABLE federation_destination_retry (
    destination TEXT PRIMARY KEY,
    failure_ts BIGINT NOT NULL,
    retry_last_ts BIGINT NOT NULL,
    retry_interval_ms BIGINT NOT NULL
);

-- Outbound PDUs, stored once however many destinations they go to; a PDU row is
-- deleted when the last destination has received it.
CREATE TABLE federation_outbound_pdus (
    pdu_id {{autoincrement_pk}},
    event_id TEXT NOT NULL,
    pdu_json TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);

CREATE TABLE federation_destination_pdus (
    destination TEXT NOT NULL,
    pdu_id BIGINT NOT NULL,
    PRIMARY KEY (destination, pdu_id)
);
CREATE INDEX federation_destination_pdus_pdu_idx ON federation_destination_pdus (pdu_id);

-- Outbound EDUs, per destination, in order of `edu_id`.
CREATE TABLE federation_outbound_edus (
    edu_id {{autoincrement_pk}},
    destination TEXT NOT NULL,
    edu_type TEXT NOT NULL,
    content_json TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX federation_outbound_edus_dest_idx ON federation_outbound_edus (destination, edu_id);

-- Inbound transactions already processed, so a retried PUT /send/{txnId} gets the same
-- answer without being processed twice (spec: Transactions). Pruned by received_ts.
CREATE TABLE federation_received_txns (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response_json TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_received_txns_ts_idx ON federation_received_txns (received_ts);
