-- Unity Fleet: clean up agent-supplied times outside any sane window (issue 9). Ingest now
-- refuses collection times before 2000 or more than a day ahead of the controller's clock,
-- and ignores such container/image times; rows stored before that check could make whole
-- API listings fail (a year before 1 does not format as RFC 3339). History samples with such
-- times are removed (they cannot be placed on a timeline); current-state rows keep their
-- values with the time replaced by the moment of this migration; alerts keep their message
-- and take the time they were raised.

DO $$
DECLARE
    low constant timestamptz := '2000-01-01 00:00:00+00';
    high constant timestamptz := now() + interval '1 day';
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['disk_samples', 'pool_samples', 'array_samples'] LOOP
        EXECUTE format('DELETE FROM %I WHERE collected_at < $1 OR collected_at > $2', t)
            USING low, high;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['disks', 'pools', 'arrays', 'container_engines', 'containers',
                             'container_images', 'databases'] LOOP
        EXECUTE format('UPDATE %I SET first_seen_at = now() WHERE first_seen_at < $1 OR first_seen_at > $2', t)
            USING low, high;
        EXECUTE format('UPDATE %I SET last_seen_at = now() WHERE last_seen_at < $1 OR last_seen_at > $2', t)
            USING low, high;
    END LOOP;
    UPDATE containers SET created_at = NULL WHERE created_at < '1970-01-02' OR created_at > high;
    UPDATE containers SET started_at = NULL WHERE started_at < '1970-01-02' OR started_at > high;
    UPDATE container_images SET created_at = NULL
        WHERE created_at < '1970-01-02' OR created_at > high;
    UPDATE collector_status SET changed_at = now() WHERE changed_at < low OR changed_at > high;
    UPDATE alerts SET observed_at = raised_at WHERE observed_at < low OR observed_at > high;
    UPDATE hosts SET facts_collected_at = NULL WHERE facts_collected_at < low OR facts_collected_at > high;
    UPDATE hosts SET agent_status_at = NULL WHERE agent_status_at < low OR agent_status_at > high;
    UPDATE job_events SET at = received_at WHERE at < low OR at > high;
    UPDATE jobs SET started_at = NULL WHERE started_at < low OR started_at > high;
    UPDATE jobs SET finished_at = updated_at WHERE finished_at < low OR finished_at > high;
END
$$;
