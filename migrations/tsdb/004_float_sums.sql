-- Issue 17/20: reads turn each rollup sum (numeric since tsdb/002) into float8, and
-- PostgreSQL's numeric -> float8 cast goes through text: ~1,440 of them per 24 h read. The
-- float8 a read answers (+-Infinity beyond float8's range, as the reads clamped it) is kept
-- beside the exact sum, computed by PostgreSQL whenever the writer merges a row. Rewrites
-- the rollup partitions once.
ALTER TABLE tsdb.rollup_1m ADD COLUMN sum_float double precision GENERATED ALWAYS AS (
    CASE WHEN sum > 1.7976931348623157e308 THEN 'Infinity'::float8
         WHEN sum < -1.7976931348623157e308 THEN '-Infinity'::float8
         ELSE sum::float8 END
) STORED;
ALTER TABLE tsdb.rollup_1h ADD COLUMN sum_float double precision GENERATED ALWAYS AS (
    CASE WHEN sum > 1.7976931348623157e308 THEN 'Infinity'::float8
         WHEN sum < -1.7976931348623157e308 THEN '-Infinity'::float8
         ELSE sum::float8 END
) STORED;
