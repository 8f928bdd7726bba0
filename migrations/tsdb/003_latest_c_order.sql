-- ListSeries seeks a device prefix as an index range: [prefix, prefix_end(prefix)) in code
-- point order. That is the "C" collation, whatever the database's default (a linguistic
-- collation such as en_US does not keep a prefix's strings together). Rebuilds the primary
-- key; the latest table holds one row per series.
ALTER TABLE tsdb.latest
    ALTER COLUMN device TYPE text COLLATE "C",
    ALTER COLUMN metric TYPE text COLLATE "C";
