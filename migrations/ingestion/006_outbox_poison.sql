-- Outbox rows whose event the bus refuses for good (too large for the broker or the
-- producer, invalid): the relay moves them here in the transaction that publishes their
-- batch-mates, so they neither block nor repeat a batch. The event itself is in event_store
-- (it was accepted); it is just not on the bus. An operator fixes the cause (e.g. raises
-- the topic's max.message.bytes) and moves the row back into ingestion.outbox, or runs
-- `cornjacket republish` for its time range.
CREATE TABLE outbox_poison (
    outbox_id     uuid PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    event_payload jsonb NOT NULL,
    retry_count   integer NOT NULL,
    last_error    text NOT NULL,
    poisoned_at   timestamptz NOT NULL DEFAULT now()
);
