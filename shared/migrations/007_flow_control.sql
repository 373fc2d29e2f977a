-- Flow control: the backlog of task batches the dispatcher releases into the tasks topic by fair share.
-- Intake writes a job's batches here (COPY, same transaction as the job row); the dispatcher publishes some
-- and stamps released_at; the aggregator deletes a batch's row once its results are recorded, which returns
-- the credit. A row of a waiting job is held until the job is admitted.
CREATE TABLE task_backlog (
    job_id       uuid        NOT NULL,
    batch_index  integer     NOT NULL,
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    tenant       text        NOT NULL,
    priority     text        NOT NULL,
    kind         text        NOT NULL,
    items        integer     NOT NULL,
    held         boolean     NOT NULL DEFAULT false,
    payload      bytea       NOT NULL,  -- the TaskBatch JSON exactly as it will be published
    headers      bytea       NOT NULL DEFAULT '{}',  -- its Kafka headers as a JSON object (trace root, submit time)
    released_at  timestamptz,
    PRIMARY KEY (job_id, batch_index)
);

-- The dispatcher's queues: a tenant's unreleased batches of one priority and kind, first submitted first.
CREATE INDEX task_backlog_queues ON task_backlog (tenant, priority, kind, seq) WHERE released_at IS NULL AND NOT held;
-- In flight: released and not yet recorded by the aggregator.
CREATE INDEX task_backlog_in_flight ON task_backlog (tenant, kind) WHERE released_at IS NOT NULL;
CREATE INDEX task_backlog_held ON task_backlog (job_id) WHERE held;

-- Admission counts a tenant's unfinished jobs (waiting, queued, running) under a per-tenant lock.
CREATE INDEX jobs_unfinished_by_tenant ON jobs (tenant, created_at) WHERE status IN ('waiting', 'queued', 'running');
