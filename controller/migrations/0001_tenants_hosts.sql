-- Unity Fleet: tenants, credentials, hosts.
--
-- Isolation model (docs/security.md): the controller connects as the migration owner and runs
-- every tenant-scoped transaction as the role `unity_app`, which has no BYPASSRLS and owns no
-- table, with the tenant in the transaction-local setting `unity.tenant_id`. Every
-- tenant-owned table carries `tenant_id` and a policy comparing it with that setting, so a
-- query that forgets a WHERE clause still sees one tenant only, and a transaction without a
-- tenant sees nothing at all.

DO $$
BEGIN
    CREATE ROLE unity_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION
    -- Another database in the same cluster (or a concurrent migration) created it first.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'unity_app', 'MEMBER') THEN
        EXECUTE format('GRANT unity_app TO %I', current_user);
    END IF;
END
$$;

CREATE FUNCTION unity_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('unity.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE enrollment_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    used_by_host  uuid
);

CREATE TABLE hosts (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hostname            text NOT NULL,
    enrolled_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz,
    agent_version       text,
    cert_serial         text NOT NULL,
    cert_not_after      timestamptz NOT NULL,
    revoked_at          timestamptz,
    boot_id             text,
    facts               jsonb,
    facts_collected_at  timestamptz
);
CREATE INDEX hosts_tenant ON hosts (tenant_id);

-- Idempotent ingest: the highest sequence number applied per (host, agent stream).
CREATE TABLE report_cursors (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id     uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    stream_id   uuid NOT NULL,
    last_seq    bigint NOT NULL CHECK (last_seq >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, stream_id)
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = unity_current_tenant()) WITH CHECK (id = unity_current_tenant());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_tokens', 'enrollment_tokens', 'hosts', 'report_cursors'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT ON tenants TO unity_app;
GRANT SELECT ON api_tokens, enrollment_tokens TO unity_app;
GRANT SELECT, INSERT, UPDATE ON hosts TO unity_app;
GRANT SELECT, INSERT, UPDATE ON report_cursors TO unity_app;

-- Credential look-ups happen before the tenant is known, so they run as the owner through
-- these two narrow functions; unity_app can call them but still cannot read the tables.

-- Returns the tenant of a live API token (and records its use), or NULL.
CREATE FUNCTION unity_authenticate_api_token(hash bytea) RETURNS uuid
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE api_tokens SET last_used_at = now()
        WHERE token_hash = hash AND revoked_at IS NULL
        RETURNING tenant_id
    $$;

-- Consumes an enrollment token. Returns (status, tenant_id): status is 'ok', 'unknown',
-- 'expired' or 'used'. Only 'ok' marks the token used, atomically with the check.
CREATE FUNCTION unity_consume_enrollment_token(hash bytea, host uuid, OUT status text, OUT tenant uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    DECLARE
        token enrollment_tokens%ROWTYPE;
    BEGIN
        SELECT * INTO token FROM enrollment_tokens WHERE token_hash = hash FOR UPDATE;
        IF NOT FOUND THEN
            status := 'unknown';
        ELSIF token.used_at IS NOT NULL THEN
            status := 'used';
        ELSIF token.expires_at <= now() THEN
            status := 'expired';
        ELSE
            UPDATE enrollment_tokens SET used_at = now(), used_by_host = host WHERE id = token.id;
            status := 'ok';
            tenant := token.tenant_id;
        END IF;
    END
    $$;

REVOKE ALL ON FUNCTION unity_authenticate_api_token(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION unity_consume_enrollment_token(bytea, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_authenticate_api_token(bytea) TO unity_app;
GRANT EXECUTE ON FUNCTION unity_consume_enrollment_token(bytea, uuid) TO unity_app;
GRANT EXECUTE ON FUNCTION unity_current_tenant() TO unity_app;
