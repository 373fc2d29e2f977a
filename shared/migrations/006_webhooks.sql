-- Webhook deliveries: one row per terminal job event with a callback_url (written by the aggregator's job-events
-- subscriber before its offset commits), sent and retried by the aggregator's dispatcher; every try is an attempt row.
CREATE TABLE webhook_deliveries (
    delivery_id     bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    job_id          uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    url             text NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);
-- The dispatcher's "what is due"; the job's deliveries for GET /v1/jobs/{id}/deliveries.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        text,
    duration_ms  double precision NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
