-- Unity Fleet: operating-system packages (issue 8) — what updates each host has pending,
-- which are security updates, whether it needs a reboot. Current state, one row per host;
-- the alerts raised on changes are the history.
CREATE TABLE host_packages (
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id                 uuid PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    manager                 text NOT NULL,
    -- The source's state and its explanation (`ok`, `not_present`, `failed`, …).
    source_state            text NOT NULL,
    source_detail           text NOT NULL,
    pending                 jsonb NOT NULL,
    pending_count           integer NOT NULL,
    security_count          integer NOT NULL,
    held_back               jsonb NOT NULL,
    reboot_required         boolean NOT NULL,
    reboot_required_by      jsonb NOT NULL,
    lists_updated_at        timestamptz,
    -- Collection time of the first report of the current unbroken run with security
    -- updates pending; null when none are pending.
    security_pending_since  timestamptz,
    -- The "pending too long" alert was raised for the current run.
    security_alerted        boolean NOT NULL DEFAULT false,
    collected_at            timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX host_packages_tenant ON host_packages (tenant_id);
ALTER TABLE host_packages ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON host_packages USING (tenant_id = unity_current_tenant())
    WITH CHECK (tenant_id = unity_current_tenant());
GRANT SELECT, INSERT, UPDATE ON host_packages TO unity_app;

ALTER TABLE collector_status DROP CONSTRAINT collector_status_source_check;
ALTER TABLE collector_status ADD CONSTRAINT collector_status_source_check
    CHECK (source IN ('smart', 'zfs', 'mdraid', 'containers', 'databases', 'packages'));
-- Alerts about the host itself (reboot required, security updates pending).
ALTER TABLE alerts DROP CONSTRAINT alerts_object_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_object_kind_check
    CHECK (object_kind IN ('disk', 'pool', 'array', 'collector', 'container', 'database', 'job',
                           'host'));
