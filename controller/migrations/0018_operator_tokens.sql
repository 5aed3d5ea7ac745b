-- Unity Fleet: the controller's operator — whoever runs the controller, above every tenant —
-- creates and lists tenants over the API (issue 10) with an operator token. Operator tokens
-- belong to no tenant, so they live in a table of their own that the application role cannot
-- read at all: the API checks them on the owner's pool, and a tenant's token can never be
-- mistaken for one (different table, different prefix).
CREATE TABLE operator_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
REVOKE ALL ON operator_tokens FROM PUBLIC;
