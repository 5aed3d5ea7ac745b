-- Whether `at` falls in a channel's quiet hours [start_at, end_at) in `time_zone`
-- (PostgreSQL's time-zone database does the local time, daylight saving included); a window
-- whose end is before its start runs over midnight. One definition for the statement that
-- postpones held notifications and the claim that refuses them, with the local time
-- computed once instead of four times in a CASE.
CREATE FUNCTION unity_in_quiet_hours(start_at time, end_at time, time_zone text, at timestamptz)
    RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT CASE WHEN start_at <= end_at THEN t >= start_at AND t < end_at
                    ELSE t >= start_at OR t < end_at END
        FROM (SELECT (at AT TIME ZONE time_zone)::time AS t) AS local_now
    $$;
GRANT EXECUTE ON FUNCTION unity_in_quiet_hours(time, time, text, timestamptz) TO unity_app;
