-- Immutable, append-only history of every accepted event.
CREATE TABLE event_store (
    event_id      uuid PRIMARY KEY,
    event_type    text NOT NULL,
    aggregate_id  text NOT NULL,
    event_time    timestamptz NOT NULL,
    ingested_at   timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    metadata      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_store_aggregate_id_idx ON event_store (aggregate_id);
CREATE INDEX event_store_event_type_idx ON event_store (event_type);
CREATE INDEX event_store_event_time_idx ON event_store (event_time);
CREATE INDEX event_store_ingested_at_idx ON event_store (ingested_at);

CREATE FUNCTION event_store_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store is append-only';
END;
$$;

CREATE TRIGGER event_store_no_update BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_immutable();
