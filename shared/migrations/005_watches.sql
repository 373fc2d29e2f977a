-- Rescans (the scheduler issue): watches, what the aggregator knows of each item's last output, the
-- scheduler's outbox of rescan triggers and its per-tenant statistics.

-- Change detection. The aggregator judges each succeeded result against the item's previous one.
ALTER TABLE item_results
    ADD COLUMN fingerprint text,
    ADD COLUMN change      text;   -- 'new' | 'changed' | 'unchanged'; NULL until judged (or not judgeable)

-- The last fingerprint of every item the pipeline has seen, keyed by owner, kind and item key; checks and
-- changes only grow, so the scheduler learns "what happened since I last looked" by comparing counts.
CREATE TABLE item_states (
    tenant       text        NOT NULL,
    kind         text        NOT NULL,
    item_key     text        NOT NULL,
    fingerprint  text        NOT NULL,
    checks       bigint      NOT NULL DEFAULT 1,
    changes      bigint      NOT NULL DEFAULT 0,
    last_job_id  uuid        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kind, item_key)
);

-- A watch: a group of items of one kind that the scheduler rescans by one mode. All times the scheduler
-- decides (next_due, watched_since, ...) come from the scheduler's clock, never from intake's.
CREATE TABLE watches (
    watch_id           uuid        PRIMARY KEY,
    tenant             text        NOT NULL,
    kind               text        NOT NULL,
    options            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority           text        NOT NULL DEFAULT 'normal',
    mode               text        NOT NULL,
    interval_s         double precision,
    min_interval_s     double precision,
    max_interval_s     double precision,
    cron               text,
    sample_fraction    double precision NOT NULL DEFAULT 0.1,
    change_threshold   double precision NOT NULL DEFAULT 0.05,
    sample_timeout_s   double precision NOT NULL DEFAULT 3600,
    debounce_s         double precision NOT NULL DEFAULT 10,
    tags               text[]      NOT NULL DEFAULT '{}',
    paused             boolean     NOT NULL DEFAULT false,
    source_job_id      uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- sampled mode: the group's own schedule and the sample in flight
    next_due           timestamptz,
    sample_started_at  timestamptz,
    last_sample        jsonb,                -- {sampled, reported, changed, escalated, decided_at}
    escalations        integer     NOT NULL DEFAULT 0
);
CREATE INDEX watches_by_tenant ON watches (tenant, watch_id);
CREATE INDEX watches_sampled_due ON watches (next_due) WHERE mode = 'sampled' AND NOT paused;
CREATE INDEX watches_by_tag ON watches USING gin (tags);

CREATE TABLE watched_items (
    watch_id       uuid        NOT NULL REFERENCES watches ON DELETE CASCADE,
    item_key       text        NOT NULL,
    input          jsonb       NOT NULL,
    position       integer     NOT NULL,
    next_due       timestamptz,          -- NULL: not yet scheduled (the scheduler stamps it from its clock)
    interval_s     double precision,     -- adaptive: the current interval
    trigger_due    timestamptz,          -- event-driven: a debounced rescan is due at this time
    in_sample      boolean     NOT NULL DEFAULT false,
    seen_checks    bigint      NOT NULL DEFAULT 0,
    seen_changes   bigint      NOT NULL DEFAULT 0,
    scans          bigint      NOT NULL DEFAULT 0,
    watched_since  timestamptz,
    PRIMARY KEY (watch_id, item_key)
);
CREATE INDEX watched_items_due ON watched_items (next_due);
CREATE INDEX watched_items_triggered ON watched_items (trigger_due) WHERE trigger_due IS NOT NULL;
CREATE INDEX watched_items_by_key ON watched_items (item_key);
CREATE INDEX watched_items_unstamped ON watched_items (watch_id) WHERE watched_since IS NULL;

-- Decided rescans waiting to be published (mark-then-emit): the decision and the advance of next_due commit
-- together; publishing happens after, under a row lock, with the trigger id as the job id so a re-publish
-- after a crash is recognised by intake and accepted once.
CREATE TABLE rescan_outbox (
    trigger_id   uuid        PRIMARY KEY,
    watch_id     uuid        NOT NULL REFERENCES watches ON DELETE CASCADE,  -- a deleted watch sends nothing more
    tenant       text        NOT NULL,
    reason       text        NOT NULL,  -- periodic | adaptive | event | sample | escalation
    items        jsonb       NOT NULL,
    decided_at   timestamptz NOT NULL,
    emitted_at   timestamptz
);
CREATE INDEX rescan_outbox_pending ON rescan_outbox (decided_at) WHERE emitted_at IS NULL;
CREATE INDEX rescan_outbox_by_watch ON rescan_outbox (watch_id, decided_at);

-- The scheduler's per-tenant statistics, recomputed every few seconds from its own clock.
CREATE TABLE watch_stats (
    tenant            text        PRIMARY KEY,
    watched_items     bigint      NOT NULL,
    due_next_hour     bigint      NOT NULL,
    due_next_day      bigint      NOT NULL,
    scans_issued      bigint      NOT NULL,
    daily_equivalent  bigint      NOT NULL,
    as_of             timestamptz NOT NULL
);
