-- Client idempotency keys: a retried request returns the event_id of the first one.
CREATE TABLE idempotency_keys (
    idempotency_key text PRIMARY KEY,
    event_id        uuid NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
