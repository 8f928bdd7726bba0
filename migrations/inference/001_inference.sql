-- The inference service's checkpoint (issue 18, ADR 20): the model of each (device, metric)
-- with what it learned up to, the bus positions already applied, the scores, the anomalies
-- still to send to ingestion, and the poison events. One transaction per polled batch
-- writes all of them, so a restart neither forgets a reading nor learns one twice.
CREATE TABLE models (
    device          text NOT NULL,
    metric          text NOT NULL,
    model           text NOT NULL,
    state           jsonb NOT NULL,
    observations    bigint NOT NULL,
    late            bigint NOT NULL DEFAULT 0,
    last_event_time timestamptz,
    last_event_id   uuid,
    last_score      double precision,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device, metric)
);

-- How far each partition was applied (a record for operators; a redelivery is recognised by
-- its stored scores, since a replaced in-memory broker restarts offsets at 0).
CREATE TABLE positions (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE scores (
    event_id   uuid NOT NULL,
    metric     text NOT NULL,
    device     text NOT NULL,
    event_time timestamptz NOT NULL,
    value      double precision NOT NULL,
    score      double precision NOT NULL,
    low        double precision NOT NULL,
    high       double precision NOT NULL,
    learned    boolean NOT NULL,
    anomaly    boolean NOT NULL,
    PRIMARY KEY (event_id, metric)
);
CREATE INDEX scores_device_time_idx ON scores (device, event_time);
CREATE INDEX scores_anomaly_time_idx ON scores (event_time) WHERE anomaly;

-- ai.anomaly events decided but not yet accepted by ingestion (sent_at NULL), and the id
-- ingestion gave each one (lineage: the anomaly a source event caused).
CREATE TABLE anomalies (
    source_event_id uuid NOT NULL,
    metric          text NOT NULL,
    device          text NOT NULL,
    event_time      timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    trace_id        text NOT NULL DEFAULT '',
    anomaly_event_id uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (source_event_id, metric)
);
CREATE INDEX anomalies_unsent_idx ON anomalies (created_at) WHERE sent_at IS NULL;

CREATE TABLE dlq (
    dlq_id        uuid PRIMARY KEY DEFAULT uuidv7(),
    consumer      text NOT NULL,
    event_id      uuid,
    event_payload bytea NOT NULL,
    error_message text NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now()
);

-- Admin calls (the model reset): services/infra/audit.py, ADR 16.
CREATE TABLE audit (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    subject    text NOT NULL,
    request_id text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    change     jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome    text NOT NULL DEFAULT 'UNKNOWN',
    error      text NOT NULL DEFAULT '',
    ended_at   timestamptz
);
CREATE INDEX audit_at_idx ON audit (at, seq);
