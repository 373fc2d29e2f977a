-- Tenants and their API keys.
-- A key reads "sk_<key_id>_<secret>": key_id is public and indexed (one lookup per request), only the
-- SHA-256 of the whole key is stored. A key is revoked by stamping revoked_at; rotating issues a new key
-- and revokes the tenant's older ones.
CREATE TABLE tenants (
    name           text PRIMARY KEY,
    plan           text NOT NULL DEFAULT 'standard',
    plan_overrides jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    key_sha256  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX api_keys_active_by_tenant ON api_keys (tenant) WHERE revoked_at IS NULL;
