-- Where `cornjacket replay` builds projections aside before swapping them in. Unlogged:
-- it is rebuilt from the event store whenever it is needed, so it is not worth WAL.
CREATE UNLOGGED TABLE projections_rebuild (LIKE projections INCLUDING ALL);
