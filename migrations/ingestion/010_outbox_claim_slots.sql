-- A claim takes only the slots its batch needs (ADR 18, "Cost"; issue 16). Migration 009's
-- claim locked ceil(64 / worker count) slots whatever its batch needed, so one relay's
-- workers held every slot and a second replica got nothing.
--
-- outbox_claim_slots(lock_key, wanted) tries the slots that have rows in the order of their
-- oldest row (pg_try_advisory_xact_lock: never waits, held until the transaction ends) and
-- stops as soon as the slots it holds have `wanted` rows: it returns each slot it holds with
-- how many of that slot's oldest rows the batch takes. A loop, because one SQL statement
-- cannot stop a running sum over only the slots it managed to lock without trying the lock
-- on every candidate. The row count runs after the lock with a fresh snapshot (a VOLATILE
-- function in READ COMMITTED), so it sees what the slot's previous owner committed.
--
-- It reads the (slot, seq) index migration 009 built. Adding a function takes no lock on the
-- outbox: this runs beside live inserts and relay batches.

CREATE FUNCTION outbox_claim_slots(lock_key integer, wanted integer)
RETURNS TABLE (claimed_slot smallint, claimed_rows integer)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    candidate smallint;
    waiting integer;
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
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(lock_key, candidate);
        SELECT count(*) INTO waiting
        FROM (SELECT 1 FROM outbox o WHERE o.slot = candidate LIMIT needed) AS r;
        CONTINUE WHEN waiting = 0;  -- emptied by its previous owner meanwhile
        claimed_slot := candidate;
        claimed_rows := waiting;
        RETURN NEXT;
        needed := needed - waiting;
        EXIT WHEN needed <= 0;
    END LOOP;
END
$$;
