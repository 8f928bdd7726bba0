-- Idempotency keys are scoped per principal (the caller's authenticated subject, or
-- "mqtt:<user>" for a device): one caller can no longer claim a key another will send.
-- Keys stored before this migration belong to the empty principal (unauthenticated
-- callers); a retry that spans the upgrade by an authenticated caller is not recognised.
ALTER TABLE idempotency_keys ADD COLUMN principal text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (principal, idempotency_key);
ALTER TABLE idempotency_keys ALTER COLUMN principal DROP DEFAULT;
