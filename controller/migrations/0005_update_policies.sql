-- Unity Fleet: automatic container updates (issue 7) — per-container policy overrides and
-- maintenance windows. Same isolation model as every tenant table.

-- A policy set through the API for a container (by host and name, so it survives the
-- container being recreated); it overrides the container's `unity.update` label.
CREATE TABLE container_policies (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id         uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    container_name  text NOT NULL,
    policy          text NOT NULL CHECK (policy IN ('off', 'notify', 'digest', 'patch', 'minor', 'major')),
    updated_by      text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, container_name)
);
CREATE INDEX container_policies_tenant ON container_policies (tenant_id);

-- When automatic updates may start: on the listed ISO weekdays (1 = Monday) from
-- `start_minute` (minutes after local midnight in `time_zone`) for `duration_minutes`. A
-- window with a host applies to that host, one without to every host of the tenant. A host
-- with no window of its own and none for its tenant may be updated at any time.
CREATE TABLE maintenance_windows (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id           uuid REFERENCES hosts (id) ON DELETE CASCADE,
    days              smallint[] NOT NULL CHECK (cardinality(days) BETWEEN 1 AND 7
                          AND days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    start_minute      integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    duration_minutes  integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
    time_zone         text NOT NULL,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_windows_tenant ON maintenance_windows (tenant_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['container_policies', 'maintenance_windows'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON container_policies TO unity_app;
GRANT SELECT, INSERT, DELETE ON maintenance_windows TO unity_app;

-- Whether `at` falls in the window (PostgreSQL's time-zone database does the local time,
-- daylight saving included). Windows may cross midnight and the end of the week.
CREATE FUNCTION unity_in_window(days smallint[], start_minute integer, duration_minutes integer,
                                time_zone text, at timestamptz) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        WITH local AS (SELECT at AT TIME ZONE time_zone AS t),
             minute_of_week AS (
                 SELECT ((extract(isodow FROM t)::int - 1) * 1440
                         + extract(hour FROM t)::int * 60 + extract(minute FROM t)::int) AS m
                 FROM local)
        SELECT EXISTS (
            SELECT 1 FROM unnest(days) AS d, minute_of_week
            WHERE (m - ((d - 1) * 1440 + start_minute) + 10080) % 10080 < duration_minutes)
    $$;
GRANT EXECUTE ON FUNCTION unity_in_window(smallint[], integer, integer, text, timestamptz) TO unity_app;

-- Every tenant id, for the automatic-update sweep (which then works tenant by tenant in
-- tenant-scoped transactions).
CREATE FUNCTION unity_tenant_ids() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT id FROM tenants $$;
REVOKE ALL ON FUNCTION unity_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_tenant_ids() TO unity_app;

-- Jobs that fail, roll back or are refused raise alerts (docs/alerts.md, "Jobs").
ALTER TABLE alerts DROP CONSTRAINT alerts_object_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_object_kind_check
    CHECK (object_kind IN ('disk', 'pool', 'array', 'collector', 'container', 'database', 'job'));
