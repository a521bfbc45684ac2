-- Application services (issue #15): per service, how far through the events stream the
-- homeserver has looked, and the transactions built but not yet acknowledged. A
-- transaction is written in the same database transaction that advances the position,
-- so after a crash every event is either in an undelivered transaction or still ahead
-- of the position: delivery is at least once, and resumes after a restart.
CREATE TABLE appservice_state (
    as_id TEXT PRIMARY KEY,
    stream_ordering BIGINT NOT NULL,
    last_txn_id BIGINT NOT NULL
);

CREATE TABLE appservice_txns (
    as_id TEXT NOT NULL,
    txn_id BIGINT NOT NULL,
    -- The transaction body as sent ({"events": [...], "ephemeral": [...]}), JSON.
    body TEXT NOT NULL,
    PRIMARY KEY (as_id, txn_id)
);
