-- Admits a group of one tenant's jobs in ONE statement, so a group costs one round trip and its commit: the
-- statement runs in its own implicit transaction. As a function, each query inside it takes a fresh snapshot, so the
-- tenant's load is read after its admission lock is held (a single plain statement would read it from before).
--
-- For each job, in order (a later job sees the earlier ones):
--   'existing'  a stored job has the same job id, or the tenant's same Idempotency-Key (the id wins): returned as is;
--   'created'   stored as 'queued' while the tenant has fewer than max_active[i] queued or running jobs, else as
--               'waiting' while fewer than max_waiting[i] wait, with its batches (held while it waits);
--   'refused'   the waiting line is full; nothing stored for it.
-- This is services/intake/admission.py's `admit`; the two must agree (tests/integration/intake/test_admission_group.py).
-- A job's batches are the entries of the batch_* arrays whose batch_job is its ordinal (1-based).
CREATE FUNCTION sluice_admit_group(
    lock_space integer, lock_key integer, tenant_name text, backlog_channel text,
    job_ids uuid[], kinds text[], priorities text[], job_options jsonb[], callback_urls text[], sources text[],
    idempotency_keys text[], fingerprints text[], item_counts integer[], batch_counts integer[],
    timeouts_s float8[], max_active integer[], max_waiting integer[],
    batch_job integer[], batch_indexes integer[], batch_items integer[], batch_payloads bytea[], batch_headers bytea[]
) RETURNS TABLE (ordinal integer, outcome text, job jsonb) LANGUAGE plpgsql AS $$
DECLARE
    active_now integer;
    waiting_now integer;
    stored jobs;
    decided text;
    any_created boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_space, lock_key);
    SELECT count(*) FILTER (WHERE j.status IN ('queued', 'running')), count(*) FILTER (WHERE j.status = 'waiting')
      INTO active_now, waiting_now
      FROM jobs j WHERE j.tenant = tenant_name AND j.status IN ('waiting', 'queued', 'running');
    FOR i IN 1 .. coalesce(array_length(job_ids, 1), 0) LOOP
        ordinal := i;
        SELECT * INTO stored FROM jobs j
         WHERE j.job_id = job_ids[i] OR (j.tenant = tenant_name AND j.idempotency_key = idempotency_keys[i])
         ORDER BY (j.job_id = job_ids[i]) DESC LIMIT 1;
        IF FOUND THEN
            outcome := 'existing';
            job := to_jsonb(stored);
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF active_now < max_active[i] THEN
            decided := 'queued';
            active_now := active_now + 1;
        ELSIF waiting_now < max_waiting[i] THEN
            decided := 'waiting';
            waiting_now := waiting_now + 1;
        ELSE
            outcome := 'refused';
            job := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO jobs (job_id, tenant, kind, priority, options, callback_url, source, idempotency_key,
                          request_fingerprint, total_items, total_batches, deadline_at, status, accepted_at)
        VALUES (job_ids[i], tenant_name, kinds[i], priorities[i], job_options[i], callback_urls[i], sources[i],
                idempotency_keys[i], fingerprints[i], item_counts[i], batch_counts[i],
                now() + timeouts_s[i] * interval '1 second', decided, now())
        RETURNING * INTO stored;
        INSERT INTO task_backlog (job_id, batch_index, tenant, priority, kind, items, held, payload, headers)
        SELECT job_ids[i], b.batch_index, tenant_name, priorities[i], kinds[i], b.items, decided = 'waiting',
               b.payload, b.headers
          FROM unnest(batch_job, batch_indexes, batch_items, batch_payloads, batch_headers)
               AS b(job_ordinal, batch_index, items, payload, headers)
         WHERE b.job_ordinal = i;
        any_created := true;
        outcome := 'created';
        job := to_jsonb(stored);
        RETURN NEXT;
    END LOOP;
    IF any_created THEN
        PERFORM pg_notify(backlog_channel, '');  -- delivered when the statement's transaction commits
    END IF;
END
$$;
