-- Unity Fleet: an operator acknowledges an alert ("I know, I'm on it"): who and when, on the
-- alert itself. Alerts stay append-only otherwise; only these two columns may change, once.
-- An acknowledged alert sends no more reminders; its recovery is still sent.
ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text CHECK (length(acknowledged_by) BETWEEN 1 AND 200),
    ADD CONSTRAINT alerts_acknowledged_together
        CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL));
GRANT UPDATE (acknowledged_at, acknowledged_by) ON alerts TO unity_app;
