-- Unity Fleet: the SHA-256 of the detail document each storage object was last written with
-- (the agent's `detail_json` text as it arrived). Ingest compares it with the new report's
-- and leaves an unchanged document where it is: a storage round every five minutes used to
-- parse, re-serialise, TOAST-compress and WAL-log ~8 KB per host even when nothing changed
-- (docs/performance.md). NULL (rows written before this) means "unknown": rewritten once.
ALTER TABLE disks ADD COLUMN detail_hash bytea;
ALTER TABLE pools ADD COLUMN detail_hash bytea;
ALTER TABLE arrays ADD COLUMN detail_hash bytea;
