-- Unity Fleet: every certificate issued to a host, by which issuer (the built-in CA or step-ca,
-- docs/pki.md), and whether it is still accepted. A renewal no longer leaves its predecessor
-- valid: once a session presents the new certificate, every older one of the host is retired
-- (refused at Hello); a renewal from certificate X retires every other certificate of the host
-- at once (a newer one the agent never saved — a crash between the answer and the write — can
-- never be used by it). Rows outlive their host on purpose: a deleted host's step-ca
-- certificates must still be revoked at step-ca; the sweep forgets rows once that is done or
-- they expired.
CREATE TABLE host_certificates (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    host_id             uuid NOT NULL,
    -- Upper-case hex without leading zero octets (unity_pki::ca::certificate_serial_hex).
    serial              text NOT NULL CHECK (serial ~ '^[0-9A-F]{1,40}$'),
    issuer              text NOT NULL CHECK (issuer IN ('built-in', 'step-ca')),
    issued_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    not_after           timestamptz NOT NULL,
    -- The first session that presented it.
    first_seen_at       timestamptz,
    -- No longer accepted: superseded, or its host revoked or deleted.
    retired_at          timestamptz,
    -- Revoked at the issuer too (step-ca's /1.0/revoke); the built-in CA needs no call.
    issuer_revoked_at   timestamptz,
    PRIMARY KEY (host_id, serial)
);
CREATE INDEX host_certificates_tenant ON host_certificates (tenant_id);
CREATE INDEX host_certificates_to_revoke ON host_certificates (tenant_id)
    WHERE retired_at IS NOT NULL AND issuer = 'step-ca' AND issuer_revoked_at IS NULL;
ALTER TABLE host_certificates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON host_certificates USING (tenant_id = unity_current_tenant())
    WITH CHECK (tenant_id = unity_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON host_certificates TO unity_app;

-- Which issuer signed the host's current certificate (shown in the API; tells an operator
-- switching issuers when no host depends on the old one).
ALTER TABLE hosts ADD COLUMN cert_issuer text NOT NULL DEFAULT 'built-in'
    CHECK (cert_issuer IN ('built-in', 'step-ca'));

-- The certificates hosts hold today: all from the built-in CA (the only issuer before this).
INSERT INTO host_certificates (tenant_id, host_id, serial, issuer, issued_at, not_after,
                               first_seen_at, retired_at)
SELECT tenant_id, id, upper(cert_serial), 'built-in', enrolled_at, cert_not_after, last_seen_at,
       revoked_at
FROM hosts
WHERE upper(cert_serial) ~ '^[0-9A-F]{1,40}$';
