-- An admission compresses its batches' payloads (TaskBatch JSON, ~50 KB per 1,000 small items) on the way to its
-- 202. pglz took 1.3 s of a 1,000,000-item upload's COPY on PostgreSQL 15 here, lz4 0.33 s. Backlog rows live only
-- until their results are recorded, so where the server lacks lz4 they are stored uncompressed (EXTERNAL): 4.5x
-- the bytes, but 0.3-0.6 s instead of pglz's 0.6-0.8 s on the embedded PostgreSQL 18.
DO $$
BEGIN
    ALTER TABLE task_backlog ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE task_backlog ALTER COLUMN payload SET STORAGE EXTERNAL;
END
$$;
