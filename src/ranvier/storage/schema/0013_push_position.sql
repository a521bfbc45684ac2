-- How far the events stream has been evaluated for push (services/push/evaluator.py),
-- so that events persisted just before a crash or shutdown are still evaluated after
-- the restart. Written in the same transaction as the push actions it covers.
CREATE TABLE push_stream_positions (
    stream_name TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL
);
