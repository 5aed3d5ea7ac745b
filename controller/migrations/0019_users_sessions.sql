-- Unity Fleet: people, for the web console (issue 11). A user belongs to one tenant and has a
-- role that is an API scope by another name (viewer = read, operator = operate, admin =
-- admin). A session is a server-side row keyed by the SHA-256 of a random id that only the
-- browser's cookie holds. Both tables are tenant rows under row-level security like the rest.
CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Unique on the controller (people log in with a name only, like an email address).
    name                 text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._@+-]{0,63}$'),
    -- A PHC string: argon2id with its parameters and salt.
    password_hash        text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role                 text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at          timestamptz,
    -- Failed logins since the last good one, and when the last failed (throttling).
    failed_logins        integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    last_failed_at       timestamptz
);

CREATE TABLE user_sessions (
    id_hash       bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Sent back in a header or form field with every state-changing request.
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = unity_current_tenant()) WITH CHECK (tenant_id = unity_current_tenant());
CREATE POLICY tenant_isolation ON user_sessions
    USING (tenant_id = unity_current_tenant()) WITH CHECK (tenant_id = unity_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON users, user_sessions TO unity_app;

-- Who is logging in, before any tenant is known: the one row of that name (hash included:
-- the controller verifies it), or nothing.
CREATE FUNCTION unity_user_for_login(login text)
    RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, disabled boolean,
                   failed_logins integer, last_failed_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT id, tenant_id, password_hash, role, disabled_at IS NOT NULL, failed_logins,
               last_failed_at
        FROM users WHERE name = login
    $$;
REVOKE ALL ON FUNCTION unity_user_for_login(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_user_for_login(text) TO unity_app;

-- The session a cookie names, if live (idle for less than `idle`), recording its use.
CREATE FUNCTION unity_session(hash bytea, idle interval)
    RETURNS TABLE (user_id uuid, tenant_id uuid, name text, role text, csrf_token text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE user_sessions s SET last_seen_at = now()
        FROM users u
        WHERE s.id_hash = hash AND u.id = s.user_id AND u.disabled_at IS NULL
          AND s.expires_at > now() AND s.last_seen_at > now() - idle
        RETURNING s.user_id, s.tenant_id, u.name, u.role, s.csrf_token
    $$;
REVOKE ALL ON FUNCTION unity_session(bytea, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_session(bytea, interval) TO unity_app;
