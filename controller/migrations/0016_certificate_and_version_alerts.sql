-- Unity Fleet: two alerts people miss (issue 10). A host certificate that will lapse because
-- the host did not renew it in time (the flag makes the alert once per lapse), and an agent
-- older than the controller (the version it was alerted for, so each version alerts once).
ALTER TABLE hosts ADD COLUMN cert_expiry_alerted boolean NOT NULL DEFAULT false;
ALTER TABLE hosts ADD COLUMN outdated_version text;
