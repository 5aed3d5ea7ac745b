-- Unity Fleet: storage health (disks, ZFS pools, md arrays), collector status, alerts.
--
-- Same isolation model as 0001: every table carries `tenant_id` and the policy
-- `tenant_isolation`; unity_app gets only the privileges ingest and the API use.
--
-- Current state lives in `disks`, `pools`, `arrays` (one row per object, updated in place);
-- history in the `*_samples` tables (one row per object per report, kept 90 days — see
-- docs/alerts.md). Objects are never deleted by ingest: an object missing from a report whose
-- source worked is marked `present = false` and keeps its last values and history.

CREATE TABLE disks (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id         uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    -- Stable across reboots and renames: `wwn:<wwn>`, else `serial:<model>:<serial>`, else
    -- `device:<host_id>:<device>` (docs/alerts.md, "Identity").
    identity_key    text NOT NULL,
    device          text NOT NULL,
    device_type     text NOT NULL,
    protocol        text NOT NULL,
    model           text,
    serial          text,
    wwn             text,
    firmware        text,
    capacity_bytes  bigint,
    rotation_rpm    integer,
    read_status     text NOT NULL,
    read_detail     text NOT NULL,
    health          text NOT NULL CHECK (health IN ('ok', 'unknown', 'warning', 'critical')),
    -- The last verdict that was not `unknown`: alerts compare against it, so a disk that
    -- spins down (standby → unknown) and back does not alert twice.
    known_health    text CHECK (known_health IN ('ok', 'warning', 'critical')),
    reasons         text[] NOT NULL,
    temperature_c   integer,
    power_on_hours  bigint,
    present         boolean NOT NULL DEFAULT true,
    detail          jsonb NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, identity_key)
);
CREATE INDEX disks_host ON disks (host_id);

CREATE TABLE disk_samples (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    disk_id         uuid NOT NULL REFERENCES disks (id) ON DELETE CASCADE,
    collected_at    timestamptz NOT NULL,
    health          text NOT NULL,
    temperature_c   integer,
    power_on_hours  bigint,
    metrics         jsonb NOT NULL,
    PRIMARY KEY (disk_id, collected_at)
);

CREATE TABLE pools (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id                uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name                   text NOT NULL,
    state                  text NOT NULL,
    health                 text NOT NULL CHECK (health IN ('ok', 'unknown', 'warning', 'critical')),
    known_health           text CHECK (known_health IN ('ok', 'warning', 'critical')),
    reasons                text[] NOT NULL,
    size_bytes             bigint,
    allocated_bytes        bigint,
    free_bytes             bigint,
    capacity_percent       smallint,
    fragmentation_percent  smallint,
    scan_function          text,
    scan_state             text,
    scan_progress_percent  real,
    scan_errors            bigint,
    data_errors            bigint,
    present                boolean NOT NULL DEFAULT true,
    detail                 jsonb NOT NULL,
    first_seen_at          timestamptz NOT NULL,
    last_seen_at           timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, name)
);
CREATE INDEX pools_tenant ON pools (tenant_id);

CREATE TABLE pool_samples (
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pool_id                uuid NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    collected_at           timestamptz NOT NULL,
    health                 text NOT NULL,
    state                  text NOT NULL,
    capacity_percent       smallint,
    allocated_bytes        bigint,
    scan_progress_percent  real,
    PRIMARY KEY (pool_id, collected_at)
);

CREATE TABLE arrays (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id                uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name                   text NOT NULL,
    level                  text NOT NULL,
    state                  text NOT NULL,
    health                 text NOT NULL CHECK (health IN ('ok', 'unknown', 'warning', 'critical')),
    known_health           text CHECK (known_health IN ('ok', 'warning', 'critical')),
    reasons                text[] NOT NULL,
    raid_disks             integer,
    active_disks           integer,
    degraded               boolean NOT NULL,
    sync_action            text,
    sync_progress_percent  real,
    present                boolean NOT NULL DEFAULT true,
    detail                 jsonb NOT NULL,
    first_seen_at          timestamptz NOT NULL,
    last_seen_at           timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, name)
);
CREATE INDEX arrays_tenant ON arrays (tenant_id);

CREATE TABLE array_samples (
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    array_id               uuid NOT NULL REFERENCES arrays (id) ON DELETE CASCADE,
    collected_at           timestamptz NOT NULL,
    health                 text NOT NULL,
    state                  text NOT NULL,
    degraded               boolean NOT NULL,
    active_disks           integer,
    sync_action            text,
    sync_progress_percent  real,
    PRIMARY KEY (array_id, collected_at)
);

CREATE TABLE collector_status (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id     uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source      text NOT NULL CHECK (source IN ('smart', 'zfs', 'mdraid')),
    state       text NOT NULL,
    detail      text NOT NULL,
    -- When `state` last changed (collection time of the report that changed it).
    changed_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (host_id, source)
);

CREATE TABLE alerts (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id      uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    object_kind  text NOT NULL CHECK (object_kind IN ('disk', 'pool', 'array', 'collector')),
    object_id    uuid,
    object_name  text NOT NULL,
    kind         text NOT NULL,
    previous     text,
    current      text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message      text NOT NULL,
    -- Collection time of the report that showed the change (agent clock).
    observed_at  timestamptz NOT NULL,
    -- When the controller raised it (controller clock): the order alerts are listed in.
    raised_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_newest ON alerts (tenant_id, raised_at DESC, id DESC);
CREATE INDEX alerts_host_newest ON alerts (host_id, raised_at DESC, id DESC);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['disks', 'disk_samples', 'pools', 'pool_samples', 'arrays',
                             'array_samples', 'collector_status', 'alerts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;

-- Current state is upserted; history is appended and pruned by age; alerts are append-only.
GRANT SELECT, INSERT, UPDATE ON disks, pools, arrays, collector_status TO unity_app;
GRANT SELECT, INSERT, DELETE ON disk_samples, pool_samples, array_samples TO unity_app;
GRANT SELECT, INSERT ON alerts TO unity_app;
