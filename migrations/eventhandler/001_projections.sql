-- CQRS read side; the query service reads these rows, only the event handler writes them.
CREATE TABLE projections (
    projection_id        uuid PRIMARY KEY DEFAULT uuidv7(),
    projection_type      text NOT NULL,
    aggregate_id         text NOT NULL,
    state                jsonb NOT NULL,
    last_event_id        uuid NOT NULL,
    last_event_timestamp timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    UNIQUE (projection_type, aggregate_id)
);
