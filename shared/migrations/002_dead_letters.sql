-- Dead letters: an index of the tasks and results dead-letter topics, written by the aggregator, so they can be
-- listed, shown and redriven without listing topics. (topic, partition, offset) makes indexing idempotent.
CREATE TABLE dead_letters (
    id                bigserial   PRIMARY KEY,
    topic             text        NOT NULL,
    partition         integer     NOT NULL,
    "offset"          bigint      NOT NULL,
    job_id            uuid,
    tenant            text,
    kind              text,
    item_index        integer,
    generation        integer,
    reason            text,
    error_type        text,
    attempts          integer,
    first_failure_at  timestamptz,
    last_failure_at   timestamptz,
    trace_id          text,
    headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    payload           jsonb,      -- the one-item TaskBatch (tasks DLQ) or the decoded event; NULL when undecodable
    raw_excerpt       text,       -- the start of an undecodable message, for a human to look at
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    redriven_at       timestamptz,
    redrive_count     integer     NOT NULL DEFAULT 0,
    CONSTRAINT dead_letters_position UNIQUE (topic, partition, "offset")
);

CREATE INDEX dead_letters_by_tenant ON dead_letters (tenant, id);
CREATE INDEX dead_letters_by_job ON dead_letters (job_id, id);

-- A redriven item's result carries a higher generation and replaces a failed or timed-out one.
ALTER TABLE item_results ADD COLUMN generation integer NOT NULL DEFAULT 0;

-- Items that ran out of time count apart from those that failed.
ALTER TABLE jobs ADD COLUMN timed_out integer NOT NULL DEFAULT 0;
