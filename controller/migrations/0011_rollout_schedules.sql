-- Unity Fleet: rollouts started by the controller on a schedule (issue 8), e.g. "security
-- updates on every host labelled role=docker, Sundays 03:00-05:00, one host at a time". Each
-- time the schedule's window opens, one rollout is created; hosts it has not started when the
-- window closes are skipped.
CREATE TABLE rollout_schedules (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind                text NOT NULL,
    params              jsonb NOT NULL,
    selector            jsonb NOT NULL,
    waves               jsonb NOT NULL,
    failure_budget      integer NOT NULL CHECK (failure_budget >= 0),
    force               boolean NOT NULL,
    job_lifetime_secs   integer NOT NULL,
    days                smallint[] NOT NULL CHECK (cardinality(days) BETWEEN 1 AND 7
                            AND days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    start_minute        integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    duration_minutes    integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
    time_zone           text NOT NULL,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- When it last created (or tried to create) a rollout, and what came of it.
    last_started_at     timestamptz,
    last_result         text
);
CREATE INDEX rollout_schedules_tenant ON rollout_schedules (tenant_id);
ALTER TABLE rollout_schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rollout_schedules USING (tenant_id = unity_current_tenant())
    WITH CHECK (tenant_id = unity_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON rollout_schedules TO unity_app;

ALTER TABLE rollouts ADD COLUMN schedule_id uuid REFERENCES rollout_schedules (id) ON DELETE SET NULL;
-- Hosts not started by then are skipped (a scheduled rollout's window closing).
ALTER TABLE rollouts ADD COLUMN deadline timestamptz;
