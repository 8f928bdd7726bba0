-- Poison events the handler gave up on; replayable.
CREATE TABLE dlq (
    dlq_id        uuid PRIMARY KEY DEFAULT uuidv7(),
    consumer      text NOT NULL,
    event_id      uuid,
    event_payload bytea NOT NULL,
    error_message text NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now(),
    retry_count   integer NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed', 'discarded'))
);
CREATE INDEX dlq_consumer_idx ON dlq (consumer);
CREATE INDEX dlq_status_idx ON dlq (status);
CREATE INDEX dlq_failed_at_idx ON dlq (failed_at);
