-- Admin calls on rules and deliveries: who, when, which request, what changed, how it ended
-- (services/infra/audit.py; docs/decisions/0016-audit.md). A row is written before the change
-- (outcome UNKNOWN) and completed after it; the query service merges these with the other
-- owners' rows for GET /api/v1/audit.
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
