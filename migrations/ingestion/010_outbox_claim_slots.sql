-- A claim takes only the slots its batch needs (ADR 18, "Cost"; issue 16). Migration 009's
-- claim locked ceil(64 / worker count) slots whatever its batch needed, so one relay's
-- workers held every slot and a second replica got nothing.
--
-- outbox_claim_slots(lock_key, wanted) is the claim: it tries the slots that have rows in
-- the order of their oldest row (pg_try_advisory_xact_lock: never waits, held until the
-- transaction ends) and returns each slot it holds' oldest rows, FOR UPDATE, by seq, up to
-- `wanted` rows in all, stopping once it has them. A loop, because one SQL statement cannot
-- stop a running sum over only the slots it managed to lock without trying the lock on
-- every candidate.
--
-- A slot's rows are read by a statement that starts after its lock (a VOLATILE function in
-- READ COMMITTED takes a fresh snapshot per statement), so they include what the slot's
-- previous owner committed, and what is still needed is counted from the rows actually
-- returned: count and rows agree. (The first version counted here and read the rows in the
-- calling statement, under its older snapshot: the claim could come back short, even
-- empty, while holding slots.) FOR UPDATE re-reads each row: one deleted meanwhile is
-- skipped. A slot emptied between the candidate scan and its lock is checked again first
-- (an index probe), so a claim rarely holds a slot it cannot use; it cannot give an
-- advisory transaction lock back, so one emptied in that last instant stays held, unused,
-- until the batch ends (its new rows wait for one batch at most).
--
-- It reads the (slot, seq) index migration 009 built. Adding a function takes no lock on the
-- outbox: this runs beside live inserts and relay batches.
CREATE FUNCTION outbox_claim_slots(lock_key integer, wanted integer)
RETURNS TABLE (claimed_id uuid, claimed_payload jsonb, claimed_retries integer, claimed_seq bigint)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    candidate smallint;
    got integer;
    needed integer := wanted;
BEGIN
    IF needed <= 0 THEN
        RETURN;
    END IF;
    FOR candidate IN
        SELECT s.slot FROM generate_series(0, 63) AS s (slot)
        CROSS JOIN LATERAL (
            SELECT o.seq FROM outbox o WHERE o.slot = s.slot ORDER BY o.seq LIMIT 1
        ) AS oldest
        ORDER BY oldest.seq
    LOOP
        -- emptied by its owner since the scan: not worth a lock
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM outbox o WHERE o.slot = candidate);
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(lock_key, candidate);
        RETURN QUERY
            SELECT o.outbox_id, o.event_payload, o.retry_count, o.seq
            FROM outbox o
            WHERE o.slot = candidate
            ORDER BY o.seq
            LIMIT needed
            FOR UPDATE;
        GET DIAGNOSTICS got = ROW_COUNT;
        needed := needed - got;
        EXIT WHEN needed <= 0;
    END LOOP;
END
$$;
