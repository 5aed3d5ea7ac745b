-- Unity Fleet: notifications (issue 10). Channels say where a tenant's alerts go; the outbox
-- (`notifications`) holds one row per alert and channel, inserted by a trigger in the same
-- transaction as the alert, so no code path that raises an alert can forget to notify, and
-- a notification exists exactly when its alert does.
CREATE TABLE notification_channels (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- `webhook`, `ntfy`, `gotify`, `smtp`, `discord`, `slack`, `telegram`.
    scheme                text NOT NULL,
    -- The channel URL (with its credentials), sealed with the controller's notify key;
    -- never returned by the API.
    target_sealed         bytea NOT NULL,
    -- The URL with credentials and paths replaced, for people.
    target_redacted       text NOT NULL,
    -- Webhooks: the HMAC secret, sealed; shown once, at creation.
    secret_sealed         bytea,
    min_severity          text NOT NULL DEFAULT 'warning'
                          CHECK (min_severity IN ('info', 'warning', 'critical')),
    -- Alert kinds routed here; empty: all.
    kinds                 text[] NOT NULL DEFAULT '{}',
    -- Send the recovery of an alert this channel was told about, whatever its severity.
    send_recoveries       boolean NOT NULL DEFAULT true,
    quiet_start           time,
    quiet_end             time,
    quiet_timezone        text NOT NULL DEFAULT 'UTC',
    -- Critical alerts go out during quiet hours too.
    quiet_allows_critical boolean NOT NULL DEFAULT true,
    -- Remind of an alert still open after this long (and every this long); null: never.
    remind_after_secs     integer CHECK (remind_after_secs IS NULL OR remind_after_secs >= 60),
    enabled               boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id       uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    -- Null for a test message.
    alert_id         uuid REFERENCES alerts (id) ON DELETE CASCADE,
    reason           text NOT NULL CHECK (reason IN ('alert', 'recovery', 'reminder', 'test')),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- When the current attempt began (state `sending`): a controller that died mid-send
    -- leaves it, and the attempt is made again after a lease.
    sending_since    timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_sending ON notifications (sending_since) WHERE state = 'sending';
CREATE INDEX notifications_alert ON notifications (alert_id, channel_id);
CREATE INDEX notifications_tenant_newest ON notifications (tenant_id, created_at DESC, id DESC);

ALTER TABLE notification_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_channels
    USING (tenant_id = unity_current_tenant()) WITH CHECK (tenant_id = unity_current_tenant());
CREATE POLICY tenant_isolation ON notifications
    USING (tenant_id = unity_current_tenant()) WITH CHECK (tenant_id = unity_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_channels TO unity_app;
GRANT SELECT, INSERT, UPDATE ON notifications TO unity_app;

-- Routing, at the alert's insert: every enabled channel of the tenant whose kinds and
-- minimum severity take it; and the recovery (an `info` alert after a warning or critical
-- one of the same object and kind) for every channel that was told about what it ends.
CREATE FUNCTION unity_route_alert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rank_new integer := CASE NEW.severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END;
    prior_id uuid;
    prior_severity text;
BEGIN
    SELECT a.id, a.severity INTO prior_id, prior_severity
    FROM alerts a
    WHERE a.host_id = NEW.host_id AND a.object_kind = NEW.object_kind AND a.kind = NEW.kind
      AND a.id <> NEW.id
      AND ((NEW.object_id IS NOT NULL AND a.object_id = NEW.object_id)
           OR (NEW.object_id IS NULL AND a.object_id IS NULL AND a.object_name = NEW.object_name))
    ORDER BY a.raised_at DESC, a.id DESC
    LIMIT 1;
    INSERT INTO notifications (id, tenant_id, channel_id, alert_id, reason)
    SELECT gen_random_uuid(), NEW.tenant_id, c.id, NEW.id,
           CASE WHEN rank_new = 0 AND prior_severity IN ('warning', 'critical')
                THEN 'recovery' ELSE 'alert' END
    FROM notification_channels c
    WHERE c.tenant_id = NEW.tenant_id AND c.enabled
      AND (cardinality(c.kinds) = 0 OR NEW.kind = ANY (c.kinds))
      AND (rank_new >= CASE c.min_severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END
           OR (rank_new = 0 AND c.send_recoveries AND prior_severity IN ('warning', 'critical')
               AND EXISTS (SELECT 1 FROM notifications n
                           WHERE n.channel_id = c.id AND n.alert_id = prior_id)));
    RETURN NULL;
END $$;

CREATE TRIGGER alerts_route AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION unity_route_alert();

-- Tell the delivery loops a notification is due now (any replica may send it).
CREATE FUNCTION unity_notify_notification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('unity_notifications', '');
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_due AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION unity_notify_notification();
