-- Two replicas applying the same readings during a rebalance (issue 18 review): every
-- checkpoint bumps the model row's version and writes it only over the version its batch
-- loaded; on a mismatch the checkpoint rolls back and the batch is applied again (service.py).
ALTER TABLE models ADD COLUMN version bigint NOT NULL DEFAULT 1;
