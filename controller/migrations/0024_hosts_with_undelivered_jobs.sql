-- Of `hosts`, those with a job a connected agent should be sent now: queued ones, and
-- dispatched ones it never acknowledged whose last delivery is older than `redeliver_before`
-- (the rows `store::jobs::deliverable` claims). Each replica asks this once per sweep for the
-- hosts it holds sessions for and wakes their dispatch tasks, instead of every session asking
-- for its own host every sweep: with 10 000 sessions that was 1 000 transactions a second on
-- an idle fleet. SECURITY DEFINER like unity_tenants_with_expired_jobs, and it answers only
-- with ids the caller passed in (hosts whose certificates it verified), so it tells no one
-- about another tenant; the delivery itself runs in the host's tenant-scoped transaction.
CREATE FUNCTION unity_hosts_with_undelivered_jobs(hosts uuid[], redeliver_before timestamptz)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        SELECT DISTINCT host_id FROM jobs
        WHERE host_id = ANY (hosts)
          AND (state = 'queued'
               OR (state = 'dispatched' AND accepted_at IS NULL
                   AND dispatched_at < redeliver_before))
    $$;
REVOKE ALL ON FUNCTION unity_hosts_with_undelivered_jobs(uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION unity_hosts_with_undelivered_jobs(uuid[], timestamptz) TO unity_app;
