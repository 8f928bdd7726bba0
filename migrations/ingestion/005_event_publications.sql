-- Where each event went on the bus (for "where is event X"): written by the relay in the
-- transaction that deletes the outbox row. A republished event gets one row per copy.
CREATE TABLE event_publications (
    event_id     uuid NOT NULL,
    topic        text NOT NULL,
    "partition"  integer NOT NULL,
    "offset"     bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, topic, "partition", "offset")
);
