-- GET /v1/jobs pages a tenant's jobs newest first by (created_at, job_id): one index serves the keyset.
CREATE INDEX jobs_by_tenant_keyset ON jobs (tenant, created_at DESC, job_id DESC);
