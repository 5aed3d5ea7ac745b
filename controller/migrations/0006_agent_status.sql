-- Unity Fleet: the agent's own state (issue 9) — its spool and what it had to drop —
-- shown with the host, so an operator sees when a host's history has a gap and why.
ALTER TABLE hosts ADD COLUMN agent_status jsonb;
ALTER TABLE hosts ADD COLUMN agent_status_at timestamptz;
