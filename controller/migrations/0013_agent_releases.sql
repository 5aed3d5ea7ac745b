-- Unity Fleet: agent releases for `agent_update` jobs (issue 8). A catalogue of the
-- controller as a whole, not of a tenant: the operator of the controller adds releases
-- (`unity-controller agent-release add`), every tenant's jobs may name them. The bytes live
-- here, in chunks of the wire's chunk size, so every replica serves them and backups hold
-- them.
CREATE TABLE agent_releases (
    sha256        bytea PRIMARY KEY CHECK (length(sha256) = 32),
    version       text NOT NULL,
    architecture  text NOT NULL,
    size          bigint NOT NULL CHECK (size > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (version, architecture)
);

CREATE TABLE agent_release_chunks (
    sha256  bytea NOT NULL REFERENCES agent_releases (sha256) ON DELETE CASCADE,
    chunk   bigint NOT NULL CHECK (chunk >= 0),
    bytes   bytea NOT NULL,
    PRIMARY KEY (sha256, chunk)
);
-- Executables barely compress; stored out of line uncompressed, a chunk is read without
-- a decompression per fetch.
ALTER TABLE agent_release_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- Sessions (as the application role) read releases; only the owner writes them.
GRANT SELECT ON agent_releases, agent_release_chunks TO unity_app;
