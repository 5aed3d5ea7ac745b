-- Unity Fleet: signed jobs (issue 7).
--
-- Same isolation model as 0001-0003: every tenant table carries `tenant_id` and the policy
-- `tenant_isolation`; unity_app gets only what the API, dispatch and ingest use.
--
-- What the database can and cannot do here (docs/security.md): a job row holds the exact
-- signed bytes the agent will verify (`spec`, `signature`, `key_id`). The signing key is a
-- file of the controller's, never in the database, so whoever can write these tables can
-- queue bytes, but cannot make an agent accept them: the agent verifies the signature, the
-- target, the time window, replay and its own allow-list before it acts.

-- API tokens get a scope: `read` (every token made before this migration), `operate`
-- (also create and cancel jobs), `admin` (reserved for the admin API).
ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'read' CHECK (scope IN ('read', 'operate', 'admin'));

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id             uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    kind                text NOT NULL,
    -- The parameters as JSON, for people; the agent acts on `spec` only.
    params              jsonb NOT NULL,
    -- What the job acts on within the host (a container name), so two jobs never touch the
    -- same thing at once; NULL for jobs that act on nothing in particular.
    target              text,
    requested_by        text NOT NULL,
    state               text NOT NULL CHECK (state IN ('queued', 'dispatched', 'running',
                            'succeeded', 'failed', 'rolled_back', 'refused', 'expired',
                            'cancelled')),
    -- Why the job is in its state, for people (the refusal, the failure, the expiry).
    detail              text NOT NULL DEFAULT '',
    -- The agent's refusal code when state = 'refused'.
    refusal             text,
    key_id              bytea NOT NULL CHECK (length(key_id) = 32),
    spec                bytea NOT NULL,
    signature           bytea NOT NULL,
    spec_sha256         bytea NOT NULL CHECK (length(spec_sha256) = 32),
    created_at          timestamptz NOT NULL,
    not_before          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    dispatched_at       timestamptz,
    dispatch_attempts   integer NOT NULL DEFAULT 0,
    accepted_at         timestamptz,
    started_at          timestamptz,
    finished_at         timestamptz,
    result_summary      text,
    result_detail       jsonb,
    -- The agent's signed receipt (postcard JobOutcome), its ECDSA signature and the host
    -- certificate key it verified with: evidence that the host itself reported the outcome.
    receipt             bytea,
    receipt_signature   bytea,
    receipt_key         bytea,
    receipt_verified    boolean,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at DESC);
CREATE INDEX jobs_host_open ON jobs (host_id, created_at)
    WHERE state IN ('queued', 'dispatched', 'running');
-- At most one unfinished job per thing on a host.
CREATE UNIQUE INDEX jobs_one_open_per_target ON jobs (host_id, target)
    WHERE target IS NOT NULL AND state IN ('queued', 'dispatched', 'running');

CREATE TABLE job_events (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq           integer NOT NULL CHECK (seq > 0),
    at            timestamptz NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('started', 'progress', 'warning')),
    message       text NOT NULL,
    detail        jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX job_events_tenant ON job_events (tenant_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jobs', 'job_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON jobs TO unity_app;
GRANT SELECT, INSERT ON job_events TO unity_app;

-- Job-signing key rotations: statement N says "the job keys are now …", signed by a key of
-- statement N-1 (or of enrollment). Public material, the same for every tenant: agents get
-- the whole chain on every session and apply what is newer than what they hold.
CREATE TABLE job_key_statements (
    version      bigint PRIMARY KEY CHECK (version > 0),
    signer       bytea NOT NULL CHECK (length(signer) = 32),
    statement    bytea NOT NULL,
    signature    bytea NOT NULL,
    -- The key the statement introduces (the one that signs jobs from now on).
    public_key   bytea NOT NULL CHECK (length(public_key) = 32),
    created_at   timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON job_key_statements TO unity_app;

-- Dispatch across controller replicas: whichever process holds the agent's session hears
-- about a queued job through NOTIFY, whichever process (or database writer) queued it.
CREATE FUNCTION unity_notify_job() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('unity_jobs', NEW.host_id::text);
        RETURN NULL;
    END
    $$;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION unity_notify_job();

CREATE FUNCTION unity_notify_job_keys() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('unity_job_keys', NEW.version::text);
        RETURN NULL;
    END
    $$;
CREATE TRIGGER job_key_statements_notify AFTER INSERT ON job_key_statements
    FOR EACH ROW EXECUTE FUNCTION unity_notify_job_keys();

-- The tenant, scope and name of a live API token (recording its use), or no row.
CREATE FUNCTION unity_authenticate_api_token_scoped(hash bytea)
    RETURNS TABLE (tenant uuid, scope text, name text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE api_tokens SET last_used_at = now()
        WHERE token_hash = hash AND revoked_at IS NULL
        RETURNING tenant_id, scope, name
    $$;
REVOKE ALL ON FUNCTION unity_authenticate_api_token_scoped(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_authenticate_api_token_scoped(bytea) TO unity_app;

-- Tenants with queued jobs past their expiry, so a sweep can expire them tenant by tenant
-- (each in its own tenant-scoped transaction) without reading any tenant's rows here.
CREATE FUNCTION unity_tenants_with_expired_jobs() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT DISTINCT tenant_id FROM jobs
        WHERE state IN ('queued', 'dispatched') AND expires_at < now()
    $$;
REVOKE ALL ON FUNCTION unity_tenants_with_expired_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_tenants_with_expired_jobs() TO unity_app;
