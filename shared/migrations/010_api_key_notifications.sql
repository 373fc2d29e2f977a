-- Intake keeps the API keys it has verified in memory. A key that is revoked (rotation included) or deleted (with its
-- tenant) is announced on the sluice_api_keys channel, with its key id, when the change commits, whoever made it
-- (any intake replica, the `sluice tenants` command, plain SQL), so every listening intake forgets it at once.
CREATE FUNCTION sluice_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_api_keys', OLD.key_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION sluice_api_key_changed();
