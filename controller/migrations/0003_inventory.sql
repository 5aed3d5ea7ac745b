-- Unity Fleet: container and database inventory (issue 4).
--
-- Same isolation model as 0001/0002: every table carries `tenant_id` and the policy
-- `tenant_isolation` for reads and writes; unity_app gets only what ingest and the API use.
--
-- Current state only: one row per engine / container / image / database, updated in place.
-- Inventory changes rarely and every change worth knowing raises an alert (docs/alerts.md),
-- so the alerts table is the change history; there are no per-report sample tables.
-- Objects are never deleted by ingest: one missing from a report whose source worked
-- (`ok` or `not_present`) is marked `present = false` and keeps its last values.

-- The container engine of a host (one per host: the agent talks to one engine).
CREATE TABLE container_engines (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id         uuid PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    version         text NOT NULL,
    api_version     text NOT NULL,
    storage_driver  text NOT NULL,
    rootless        boolean NOT NULL,
    endpoint        text NOT NULL,
    present         boolean NOT NULL DEFAULT true,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX container_engines_tenant ON container_engines (tenant_id);

CREATE TABLE containers (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id             uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    -- The engine's full container id. A recreated container (compose up after a pull) has
    -- a new engine id and so is a new row; the old one goes absent.
    engine_id           text NOT NULL,
    name                text NOT NULL,
    image               text NOT NULL,
    image_id            text NOT NULL,
    repo_digest         text,
    state               text NOT NULL,
    health              text,
    -- The last health verdict that was `healthy` or `unhealthy` (`starting` and no health
    -- are no verdict): alerts compare against it, like `disks.known_health`.
    known_health        text CHECK (known_health IN ('healthy', 'unhealthy')),
    exit_code           bigint,
    restart_count       bigint,
    created_at          timestamptz,
    started_at          timestamptz,
    ports               text[] NOT NULL,
    compose_project     text,
    compose_service     text,
    update_state        text NOT NULL CHECK (update_state IN
                            ('up_to_date', 'update_available', 'unknown', 'not_checked')),
    update_new_digest   text,
    update_reason       text NOT NULL,
    -- The registry digest (or '' when the agent gave none) of the update last announced by
    -- a `container_update` alert; cleared when the container is up to date again.
    update_notified     text,
    present             boolean NOT NULL DEFAULT true,
    detail              jsonb NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, engine_id)
);
CREATE INDEX containers_tenant ON containers (tenant_id);

CREATE TABLE container_images (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id         uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    image_id        text NOT NULL,
    tags            text[] NOT NULL,
    digests         text[] NOT NULL,
    size_bytes      bigint,
    created_at      timestamptz,
    present         boolean NOT NULL DEFAULT true,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, image_id)
);
CREATE INDEX container_images_tenant ON container_images (tenant_id);

CREATE TABLE databases (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id         uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    -- Stable per host: `<kind>:tcp:<lowest TCP port>`, else `<kind>:unix:<first socket>`,
    -- else `<kind>:dir:<data_dir>`, else `<kind>:container:<id>`, else
    -- `<kind>:process:<name>` (docs/inventory-api.md, "Identity").
    identity_key    text NOT NULL,
    kind            text NOT NULL,
    -- The last version the agent could read (a round that cannot read it keeps this one).
    version         text,
    listen          text[] NOT NULL,
    pid             bigint,
    process         text,
    container_id    text,
    data_dir        text,
    found_by        text[] NOT NULL,
    probe           text NOT NULL,
    probe_detail    text NOT NULL,
    present         boolean NOT NULL DEFAULT true,
    detail          jsonb NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, identity_key)
);
CREATE INDEX databases_tenant ON databases (tenant_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['container_engines', 'containers', 'container_images',
                             'databases'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;

-- The inventory sources report their state in the existing collector table, and alerts
-- name containers and databases.
ALTER TABLE collector_status DROP CONSTRAINT collector_status_source_check;
ALTER TABLE collector_status ADD CONSTRAINT collector_status_source_check
    CHECK (source IN ('smart', 'zfs', 'mdraid', 'containers', 'databases'));
ALTER TABLE alerts DROP CONSTRAINT alerts_object_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_object_kind_check
    CHECK (object_kind IN ('disk', 'pool', 'array', 'collector', 'container', 'database'));

-- Current state is upserted and marked absent, never deleted.
GRANT SELECT, INSERT, UPDATE ON container_engines, containers, container_images, databases
    TO unity_app;
