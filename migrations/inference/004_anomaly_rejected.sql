-- An anomaly ingestion refused for good (issue 18 review) is kept as rejected, with the
-- reason, instead of being marked sent: visible, never silently lost, not retried.
ALTER TABLE anomalies ADD COLUMN rejected_at timestamptz;
ALTER TABLE anomalies ADD COLUMN rejected_error text;
DROP INDEX anomalies_unsent_idx;
CREATE INDEX anomalies_unsent_idx ON anomalies (created_at)
    WHERE sent_at IS NULL AND rejected_at IS NULL;
