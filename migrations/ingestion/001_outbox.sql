-- Transactional outbox: a row is committed before the caller is told "accepted".
CREATE TABLE outbox (
    outbox_id     uuid PRIMARY KEY DEFAULT uuidv7(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    event_payload jsonb NOT NULL,
    retry_count   integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

CREATE FUNCTION notify_outbox_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_insert', NEW.outbox_id::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER outbox_insert_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION notify_outbox_insert();
