-- Action orchestrator: rules, delivery jobs (the DLQ is status 'failed'), attempts, and the
-- state several replicas must agree on: circuit breakers, dedupe windows, the rate limit.
CREATE TABLE rules (
    rule_id            uuid PRIMARY KEY,
    name               text NOT NULL,
    event_type_pattern text NOT NULL,
    condition          text NOT NULL DEFAULT '',
    target_url         text NOT NULL,
    target_headers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    secrets            text[] NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    disabled_reason    text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX rules_created_idx ON rules (created_at, rule_id);

CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    rule_id         uuid NOT NULL REFERENCES rules (rule_id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    target_url      text NOT NULL,
    -- scheme://host:port, the circuit breaker's key
    endpoint        text NOT NULL,
    event           jsonb NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('pending', 'delivered', 'failed', 'discarded', 'suppressed')),
    attempt_count   integer NOT NULL DEFAULT 0,
    -- attempt_count when last replayed: the retry budget counts from here
    budget_base     integer NOT NULL DEFAULT 0,
    -- when a pending job is due; a claimed job's lease expiry (a dead worker's job comes back)
    next_attempt_at timestamptz,
    locked_until    timestamptz,
    locked_by       text,
    last_error      text NOT NULL DEFAULT '',
    replay_count    integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    -- a re-delivered event never makes a second job
    UNIQUE (rule_id, event_id)
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_created_idx ON deliveries (created_at);
CREATE INDEX deliveries_status_idx ON deliveries (status, created_at);
CREATE INDEX deliveries_rule_idx ON deliveries (rule_id, created_at);

CREATE TABLE attempts (
    attempt_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES deliveries (delivery_id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    outcome     text NOT NULL,
    status_code integer NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    url         text NOT NULL
);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, attempt_id);

CREATE TABLE breakers (
    endpoint             text PRIMARY KEY,
    state                text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    open_until           timestamptz,
    trial_until          timestamptz,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE dedupe (
    event_type   text NOT NULL,
    target_url   text NOT NULL,
    window_until timestamptz NOT NULL,
    delivery_id  uuid NOT NULL,
    PRIMARY KEY (event_type, target_url)
);

-- One row: the start of the next free slot of the global rate limit.
CREATE TABLE rate_limit (
    id        integer PRIMARY KEY CHECK (id = 1),
    next_slot timestamptz NOT NULL
);
INSERT INTO rate_limit VALUES (1, '-infinity');
