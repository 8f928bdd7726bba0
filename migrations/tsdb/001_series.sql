-- Time series (issue 17, ADR 19): raw points and their minute and hour rollups, each
-- partitioned by day so retention drops whole partitions, never rows. Partitions are made by
-- the writer (ahead of time and on demand): services/tsdb/points_store.py.
CREATE SCHEMA IF NOT EXISTS tsdb;

-- One row per numeric payload field of a sensor event. The key makes a re-delivered event a
-- no-op (event_id and metric fix device and time) and serves the series reads.
CREATE TABLE tsdb.points (
    device   text             NOT NULL,
    metric   text             NOT NULL,
    time     timestamptz      NOT NULL,
    value    double precision NOT NULL,
    event_id uuid             NOT NULL,
    PRIMARY KEY (device, metric, time, event_id)
) PARTITION BY RANGE (time);

-- Aggregates per (device, metric, minute) and (device, metric, hour), merged with the new
-- points of each batch in its write transaction (ADR 19). first/last are the values of the
-- earliest/latest point by (time, event_id), kept with that key so a late point can merge.
CREATE TABLE tsdb.rollup_1m (
    device     text             NOT NULL,
    metric     text             NOT NULL,
    bucket     timestamptz      NOT NULL,
    count      bigint           NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    first      double precision NOT NULL,
    first_time timestamptz      NOT NULL,
    first_id   uuid             NOT NULL,
    last       double precision NOT NULL,
    last_time  timestamptz      NOT NULL,
    last_id    uuid             NOT NULL,
    PRIMARY KEY (device, metric, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE tsdb.rollup_1h (LIKE tsdb.rollup_1m INCLUDING ALL) PARTITION BY RANGE (bucket);

-- The newest point of every (device, metric): the latest-values read and the list of series.
CREATE TABLE tsdb.latest (
    device   text             NOT NULL,
    metric   text             NOT NULL,
    time     timestamptz      NOT NULL,
    value    double precision NOT NULL,
    event_id uuid             NOT NULL,
    PRIMARY KEY (device, metric)
);
