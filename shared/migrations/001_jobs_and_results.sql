-- Jobs: one row per accepted (or rejected) job; intake inserts it before publishing any batch,
-- so status answers at once after the 202. The aggregator owns the counters and the status after that.
CREATE TABLE jobs (
    job_id               uuid PRIMARY KEY,
    tenant               text        NOT NULL,
    kind                 text        NOT NULL,
    priority             text        NOT NULL DEFAULT 'normal',
    options              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    callback_url         text,
    source               text        NOT NULL,
    idempotency_key      text,
    request_fingerprint  text,
    status               text        NOT NULL DEFAULT 'queued',
    total_items          integer     NOT NULL,
    total_batches        integer     NOT NULL,
    succeeded            integer     NOT NULL DEFAULT 0,
    failed               integer     NOT NULL DEFAULT 0,
    cancelled            integer     NOT NULL DEFAULT 0,
    error                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    accepted_at          timestamptz,
    started_at           timestamptz,
    finished_at          timestamptz,
    cancel_requested_at  timestamptz,
    lifecycle_announced  boolean     NOT NULL DEFAULT false,
    CONSTRAINT jobs_idempotency UNIQUE (tenant, idempotency_key)
);

CREATE INDEX jobs_by_tenant ON jobs (tenant, created_at DESC);
CREATE INDEX jobs_unannounced ON jobs (finished_at)
    WHERE NOT lifecycle_announced AND status IN ('completed', 'partially_failed', 'failed', 'cancelled');

-- One row per item and job: the primary key is what makes redelivered results harmless.
-- No foreign key to jobs: the aggregator checks job existence per write batch instead of per row.
CREATE TABLE item_results (
    job_id       uuid        NOT NULL,
    item_index   integer     NOT NULL,
    status       text        NOT NULL,
    input        jsonb,
    output       jsonb,
    error        text,
    error_type   text,
    attempts     integer     NOT NULL DEFAULT 1,
    duration_ms  double precision        NOT NULL DEFAULT 0,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, item_index)
);
