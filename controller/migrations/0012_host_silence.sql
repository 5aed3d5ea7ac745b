-- Unity Fleet: hosts that stopped reporting (issue 10). Set when the `host_silent` alert is
-- raised, cleared (with a recovery alert) when the host checks in again, so each silence is
-- told once.
ALTER TABLE hosts ADD COLUMN silent_since timestamptz;
