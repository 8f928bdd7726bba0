-- One dead letter per poison event and consumer. A redelivery of an event that is already a
-- pending letter updates that row (retry_count + 1, its latest error) instead of adding one;
-- a replayed or discarded letter is left as it is (services/eventhandler/projection_store.py).
-- A letter without an event id (an undecodable message) is keyed by its bytes' SHA-256.
--
-- Rows written before this migration may repeat an event. Each group is folded into one row
-- first: the replayed one if there is one (its effect is in the projections), else a pending
-- one (it still needs an operator), else a discarded one; the earliest failure among those.
-- The kept row counts the others as failed attempts: retry_count = their sum + (rows - 1).
--
-- The table is locked against writes first (the migration runs in one transaction): an old
-- replica still running during a rolling deploy must not insert a duplicate between the
-- fold and the unique index, or the index build fails. Its insert waits and then conflicts.
LOCK TABLE dlq IN SHARE ROW EXCLUSIVE MODE;

WITH keyed AS (
    SELECT dlq_id, consumer, status, failed_at, retry_count,
           coalesce(event_id::text, 'sha256:' || encode(sha256(event_payload), 'hex')) AS k
    FROM dlq
),
ranked AS (
    SELECT dlq_id,
           first_value(dlq_id) OVER (
               PARTITION BY consumer, k
               ORDER BY CASE status WHEN 'replayed' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END,
                        failed_at, dlq_id
           ) AS keep,
           count(*) OVER (PARTITION BY consumer, k) AS n,
           sum(retry_count) OVER (PARTITION BY consumer, k) AS retries
    FROM keyed
),
kept AS (
    UPDATE dlq SET retry_count = r.retries + r.n - 1
    FROM ranked r
    WHERE dlq.dlq_id = r.dlq_id AND r.dlq_id = r.keep AND r.n > 1
    RETURNING dlq.dlq_id
)
DELETE FROM dlq USING ranked r
WHERE dlq.dlq_id = r.dlq_id AND r.dlq_id <> r.keep;

ALTER TABLE dlq ADD CONSTRAINT dlq_consumer_event_id_key UNIQUE (consumer, event_id);
CREATE UNIQUE INDEX dlq_consumer_payload_key ON dlq (consumer, sha256(event_payload))
    WHERE event_id IS NULL;
