-- One NOTIFY per inserting statement instead of one per row: group commit and batch ingest
-- insert hundreds of rows at once, and the relay only needs to know that there is work.
DROP TRIGGER outbox_insert_notify ON outbox;

CREATE FUNCTION notify_outbox_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_insert', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_insert_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_statement();
