-- Unity Fleet: a tenant's admins revoke its API tokens through the API (issue 10), inside the
-- tenant's row-level security like every other tenant write; creating tokens stays with the
-- owner's functions (the token is made and hashed by the controller, never by SQL callers).
GRANT UPDATE (revoked_at) ON api_tokens TO unity_app;

-- …and delete a host with everything it reported (the tables referencing hosts cascade).
GRANT DELETE ON hosts TO unity_app;
