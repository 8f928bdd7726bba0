-- Issue 17 review: a float8 rollup sum overflows ("value out of range") when a few huge but
-- finite readings land in one bucket, and the write that would make it was refused. Sums are
-- numeric (exact, no overflow); reads turn them back into float8, an infinite sum at worst.
ALTER TABLE tsdb.rollup_1m ALTER COLUMN sum TYPE numeric;
ALTER TABLE tsdb.rollup_1h ALTER COLUMN sum TYPE numeric;
