-- A model reset racing a batch in flight (issue 18): the reset bumps the row's generation and
-- clears its state instead of deleting the row, and a checkpoint writes a model only over the
-- generation it loaded, so a batch that loaded the model before the reset cannot write it back.
ALTER TABLE models ADD COLUMN generation bigint NOT NULL DEFAULT 0;
ALTER TABLE models ALTER COLUMN state DROP NOT NULL;
