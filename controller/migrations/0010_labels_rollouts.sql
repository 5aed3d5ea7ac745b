-- Unity Fleet: host labels and rollouts (issue 8). A rollout runs one job kind over a set of
-- hosts in waves, each wave starting only when the previous one ended within its failure
-- budget. Hosts are fixed when the rollout is created (their wave too), so what it will touch
-- is known up front and shown.
CREATE TABLE host_labels (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id     uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9._/-]{0,62}$'),
    value       text NOT NULL CHECK (length(value) <= 128),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, key)
);
CREATE INDEX host_labels_tenant ON host_labels (tenant_id, key, value);

CREATE TABLE rollouts (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    params          jsonb NOT NULL,
    -- What chose the hosts: {"labels": {...}, "host_ids": [...]}.
    selector        jsonb NOT NULL,
    -- The waves as asked: [1, "25%", "100%"].
    waves           jsonb NOT NULL,
    -- Failed hosts a wave may have and still let the next one start.
    failure_budget  integer NOT NULL CHECK (failure_budget >= 0),
    -- Touch hosts whose storage is degraded, and ignore maintenance windows.
    force           boolean NOT NULL,
    job_lifetime_secs integer NOT NULL,
    state           text NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'aborted', 'completed')),
    current_wave    integer NOT NULL DEFAULT 0,
    reason          text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollouts_tenant ON rollouts (tenant_id, created_at DESC);
CREATE INDEX rollouts_running ON rollouts (state) WHERE state = 'running';

CREATE TABLE rollout_hosts (
    rollout_id  uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id     uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    wave        integer NOT NULL,
    position    integer NOT NULL,
    state       text NOT NULL CHECK (state IN ('pending', 'waiting_window', 'deferred',
                    'dispatched', 'succeeded', 'failed', 'skipped')),
    job_id      uuid REFERENCES jobs (id),
    reason      text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout_id, host_id)
);
CREATE INDEX rollout_hosts_wave ON rollout_hosts (rollout_id, wave, position);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['host_labels', 'rollouts', 'rollout_hosts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = unity_current_tenant()) '
            'WITH CHECK (tenant_id = unity_current_tenant())', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON host_labels TO unity_app;
GRANT SELECT, INSERT, UPDATE ON rollouts, rollout_hosts TO unity_app;

-- A halted rollout raises an alert (on the host whose failure exhausted the budget).
ALTER TABLE alerts DROP CONSTRAINT alerts_object_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_object_kind_check
    CHECK (object_kind IN ('disk', 'pool', 'array', 'collector', 'container', 'database', 'job',
                           'host', 'rollout'));
