-- Signing secrets are sealed at rest (AES-256-GCM, services/actions/secretbox.py):
-- 'cj1:<key id>:<base64>'. The key is not in the database, so rules stored in plaintext
-- before this migration are sealed by the orchestrator when it starts
-- (PostgresActionStore.seal_plaintext_secrets); from now on the database itself refuses
-- a plaintext secret from any writer (NOT VALID: checked on every insert and update,
-- not on the rows that are sealed at start).
CREATE FUNCTION all_sealed(secrets text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT coalesce(bool_and(s LIKE 'cj1:%'), true) FROM unnest(secrets) AS s $$;

ALTER TABLE rules ADD CONSTRAINT rules_secrets_sealed CHECK (all_sealed(secrets)) NOT VALID;
