-- Deadlines, stall detection and retention, all run by the scheduler's sweeps.
-- deadline_at: intake stores created_at + options.job_timeout_s; the scheduler stamps its default on the rest.
-- last_progress_at: the aggregator bumps it with every write that inserts a result for the job.
-- stalled_since: set by the scheduler when a running job has had no result for its stall window; cleared on progress.
ALTER TABLE jobs
    ADD COLUMN deadline_at      timestamptz,
    ADD COLUMN last_progress_at timestamptz,
    ADD COLUMN stalled_since    timestamptz;

-- Unfinished jobs by deadline: the timeout sweep's "what is due" and "what has no deadline yet".
CREATE INDEX jobs_unfinished_by_deadline ON jobs (deadline_at) WHERE status IN ('queued', 'running');
-- Running jobs by last activity: the stall sweep.
CREATE INDEX jobs_running_by_progress ON jobs (coalesce(last_progress_at, started_at)) WHERE status = 'running';
-- Finished jobs by age: the retention purge.
CREATE INDEX jobs_by_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- The few stalled jobs: the stall sweep's "clear it when progress resumes".
CREATE INDEX jobs_stalled ON jobs (job_id) WHERE stalled_since IS NOT NULL;
