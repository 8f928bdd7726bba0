-- Per-aggregate order on the bus (ADR 18). Every outbox row gets:
--   seq:  its place in insert order, from a sequence without a per-session cache (CACHE 1,
--         the default), so values are handed out in the order the inserts ran, whoever runs
--         them. created_at is the accepting process's clock and can disagree across replicas.
--   slot: one of 64 slots, from the aggregate id (the first two bytes of its SHA-256, mod 64;
--         services/ingestion/relay.py slot_of computes the same). A relay worker owns a slot for one
--         transaction (pg_try_advisory_xact_lock) and sends its rows oldest seq first, so
--         one aggregate's events are never relayed by two workers at once.
-- The number of slots is part of the schema, not a setting: every relay must agree on it.
--
-- This rewrites the outbox (ACCESS EXCLUSIVE until the migrations commit). Stop every relay
-- first (ADR 18, "Upgrades"): queued behind a relay's open batch, the lock request would
-- block every outbox insert behind it. lock_timeout makes it give up instead (the process
-- exits with the error and its restart tries again); reset at the end, so later migrations
-- in the same transaction keep the default.
SET LOCAL lock_timeout = '5s';
CREATE SEQUENCE outbox_seq AS bigint;
ALTER TABLE outbox ADD COLUMN seq bigint;
UPDATE outbox o SET seq = n.s
FROM (SELECT outbox_id, nextval('outbox_seq') AS s
      FROM (SELECT outbox_id FROM outbox ORDER BY created_at, outbox_id) AS ordered) AS n
WHERE o.outbox_id = n.outbox_id;
ALTER TABLE outbox ALTER COLUMN seq SET DEFAULT nextval('outbox_seq');
ALTER TABLE outbox ALTER COLUMN seq SET NOT NULL;
ALTER SEQUENCE outbox_seq OWNED BY outbox.seq;
-- convert_to is only STABLE (it names an encoding); UTF-8 to UTF-8 never changes, so the
-- wrapper may be IMMUTABLE, as a generated column needs.
CREATE FUNCTION outbox_slot(aggregate_id text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN (
    (get_byte(sha256(convert_to(aggregate_id, 'UTF8')), 0) * 256
     + get_byte(sha256(convert_to(aggregate_id, 'UTF8')), 1)) % 64
)::smallint;
ALTER TABLE outbox ADD COLUMN slot smallint NOT NULL
    GENERATED ALWAYS AS (outbox_slot(coalesce(event_payload->>'aggregate_id', ''))) STORED;
-- Finds each slot's oldest row and reads a slot's rows oldest first without passing over
-- the other slots' rows (the claim, migration 010). Built here, while the table is held
-- for the rewrite anyway: a later CREATE INDEX would block inserts again while it builds.
CREATE INDEX outbox_slot_seq_idx ON outbox (slot, seq);
DROP INDEX outbox_created_at_idx;
SET LOCAL lock_timeout TO DEFAULT;
