-- Deploy whatsapp_handler:jobs/late_jobs to pg
-- requires: jobs/jobs jobs/cron_job_failures
-- A job that stopped running raises no failure: pg_cron only records the runs it starts.
-- cron_job_lateness() says, per enabled job, how long ago it last started and whether that
-- is more than twice its period, the longest wait between two runs its schedule allows
-- (_cron_period). A job that has not run since it was enabled, or since its schedule
-- changed, is judged from that moment: jobs.scheduled_at, set by a trigger of this change
-- (the deploy time for the jobs already there). So a new job, a re-enabled one, or a
-- history trimmed to nothing does not count as late until two periods have passed.
--
-- As in jobs/cron_job_failures: pg_cron shows a job's runs only to the role it runs as, so
-- the last starts are read by _cron_job_last_runs, owned by the jobs' login; the table's
-- new column and its trigger belong to the deploying superuser, as the table does.
BEGIN;

ALTER TABLE whatsapp_handler.jobs ADD COLUMN scheduled_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN whatsapp_handler.jobs.scheduled_at IS 'When the job was last enabled or given a new schedule (the deploy time for the jobs of the first deploy): cron_job_lateness() judges a job that has not run since from this moment.';

CREATE FUNCTION whatsapp_handler._job_scheduled_at()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    NEW.scheduled_at := now();
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._job_scheduled_at() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._job_scheduled_at() IS
    'Trigger of whatsapp_handler.jobs (SECURITY INVOKER, owned by the deploying superuser as the table is): sets scheduled_at to now() when a job is enabled again or its schedule changes. Raises nothing.';
CREATE TRIGGER jobs_scheduled_at
BEFORE UPDATE ON whatsapp_handler.jobs
FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR NEW.schedule IS DISTINCT FROM OLD.schedule))
EXECUTE FUNCTION whatsapp_handler._job_scheduled_at();

-- Read as the jobs' login: the start of each of its jobs' last run (one pass over the
-- history, however many jobs).
CREATE FUNCTION whatsapp_handler._cron_job_last_runs()
RETURNS TABLE (job_name text, active boolean, last_start timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT c.jobname, c.active, r.last_start
    FROM cron.job c
    LEFT JOIN (SELECT d.jobid, max(d.start_time) AS last_start FROM cron.job_run_details d GROUP BY d.jobid) r
           ON r.jobid = c.jobid
    WHERE c.username = current_user AND c.database = current_database()
      AND c.jobname LIKE 'whatsapp\_handler.%'
$$;
ALTER FUNCTION whatsapp_handler._cron_job_last_runs() OWNER TO whatsapp_handler_cron;
REVOKE ALL ON FUNCTION whatsapp_handler._cron_job_last_runs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler._cron_job_last_runs() TO whatsapp_handler_owner;
COMMENT ON FUNCTION whatsapp_handler._cron_job_last_runs() IS
    'Internal (cron_job_lateness): per job of whatsapp_handler_cron in this database named whatsapp_handler.*, whether it is active and when its last run started (NULL: none in cron.job_run_details). Owned by whatsapp_handler_cron: pg_cron shows a role the runs of its own jobs only. Raises nothing.';

SET LOCAL ROLE whatsapp_handler_owner;

-- One field of a five-field schedule as the set of values it names, the way pg_cron reads
-- it (vixie cron): a list of *, N, N-M, each with an optional /step (N/step runs from N to
-- the field's end), month and weekday names, 7 for Sunday.
CREATE FUNCTION whatsapp_handler._cron_field(p_field text, p_low integer, p_high integer, p_names text[] DEFAULT NULL)
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_item  text;
    v_parts text[];
    v_ends  integer[];
    v_end   text;
    v_step  integer;
    v_set   integer[] := '{}';
BEGIN
    FOREACH v_item IN ARRAY string_to_array(lower(p_field), ',') LOOP
        v_parts := regexp_match(v_item, '^(\*|[a-z0-9]{1,3})(?:-([a-z0-9]{1,3}))?(?:/([0-9]{1,3}))?$');
        IF v_parts IS NULL OR (v_parts[1] = '*' AND v_parts[2] IS NOT NULL) THEN
            RETURN NULL;
        END IF;
        v_ends := '{}';
        FOREACH v_end IN ARRAY ARRAY[v_parts[1], v_parts[2]] LOOP
            CONTINUE WHEN v_end IS NULL;
            v_ends := v_ends || CASE WHEN v_end = '*' THEN NULL
                                     WHEN v_end ~ '^[0-9]+$' THEN v_end::integer
                                     ELSE array_position(p_names, v_end) + p_low - 1 END;
            IF v_end <> '*' AND v_ends[cardinality(v_ends)] IS NULL THEN
                RETURN NULL;  -- a name this field does not know
            END IF;
        END LOOP;
        v_step := coalesce(v_parts[3]::integer, 1);
        IF v_parts[1] = '*' THEN
            v_ends := ARRAY[p_low, p_high];
        ELSIF cardinality(v_ends) = 1 THEN
            v_ends := ARRAY[v_ends[1], CASE WHEN v_parts[3] IS NULL THEN v_ends[1] ELSE p_high END];
        END IF;
        IF v_step < 1 OR v_ends[1] < p_low OR v_ends[2] > p_high OR v_ends[1] > v_ends[2] THEN
            RETURN NULL;
        END IF;
        v_set := v_set || ARRAY(SELECT generate_series(v_ends[1], v_ends[2], v_step));
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT CASE WHEN p_high = 7 AND v = 7 THEN 0 ELSE v END FROM unnest(v_set) v ORDER BY 1);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._cron_field(text, integer, integer, text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._cron_field(text, integer, integer, text[]) IS
    'Internal (_cron_period): the sorted values one field of a cron schedule names between p_low and p_high (lists, ranges, steps, the names in p_names counted from p_low; a weekday 7 is 0); NULL when the field is not one pg_cron reads. Raises nothing.';

-- The period of a schedule: the longest wait between two runs it allows, so that "not run
-- within twice its period" never fires between two legitimate runs. Every day alike (the
-- day fields all *): from the day's run times, around midnight. Otherwise the days the
-- schedule names are listed over 28 years from 2000 (the Gregorian weekdays repeat every
-- 28 years until 2100), or two weeks when only weekdays are named. pg_cron's rule for the
-- two day fields: when either starts with *, a day must match both; else either.
CREATE FUNCTION whatsapp_handler._cron_period(p_schedule text)
RETURNS interval
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_text   text := lower(btrim(p_schedule));
    v_fields text[];
    v_times  integer[];
    v_dom    integer[];
    v_month  integer[];
    v_dow    integer[];
    v_last   boolean;
    v_both   boolean;
    v_days   date[];
    v_gap    integer;
BEGIN
    IF v_text ~ '^[0-9]{1,2} seconds?$' THEN  -- pg_cron 1.5 and later
        RETURN CASE WHEN split_part(v_text, ' ', 1)::integer BETWEEN 1 AND 59
                    THEN make_interval(secs => split_part(v_text, ' ', 1)::integer) END;
    END IF;
    v_text := CASE v_text WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
                          WHEN '@monthly' THEN '0 0 1 * *' WHEN '@weekly' THEN '0 0 * * 0'
                          WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
                          WHEN '@hourly' THEN '0 * * * *' ELSE v_text END;
    v_fields := regexp_split_to_array(v_text, '\s+');
    IF cardinality(v_fields) <> 5 THEN
        RETURN NULL;  -- @reboot (runs once), or not a schedule
    END IF;
    v_times := ARRAY(SELECT h * 60 + m FROM unnest(_cron_field(v_fields[2], 0, 23)) h,
                                            unnest(_cron_field(v_fields[1], 0, 59)) m ORDER BY 1);
    v_last := v_fields[3] = '$';  -- pg_cron 1.5 and later: the month's last day
    v_dom := CASE WHEN v_last THEN '{}' ELSE _cron_field(v_fields[3], 1, 31) END;
    v_month := _cron_field(v_fields[4], 1, 12, '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}');
    v_dow := _cron_field(v_fields[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}');
    IF cardinality(v_times) = 0 OR v_dom IS NULL OR v_month IS NULL OR v_dow IS NULL THEN
        RETURN NULL;
    END IF;
    v_both := left(v_fields[3], 1) = '*' OR left(v_fields[5], 1) = '*';

    IF v_both AND cardinality(v_dom) = 31 AND cardinality(v_month) = 12 AND cardinality(v_dow) = 7 THEN
        -- Every day: the longest gap between the day's times, the one over midnight included.
        SELECT max(g) INTO v_gap
        FROM (SELECT coalesce(lead(t) OVER (ORDER BY t), v_times[1] + 1440) - t AS g FROM unnest(v_times) t) x;
        RETURN make_interval(mins => v_gap);
    END IF;
    v_days := ARRAY(
        SELECT d::date FROM generate_series(date '2000-01-01',
            CASE WHEN v_both AND cardinality(v_dom) = 31 AND cardinality(v_month) = 12 THEN date '2000-01-15'
                 ELSE date '2028-01-01' END, interval '1 day') d
        WHERE extract(month FROM d)::integer = ANY (v_month)
          AND CASE WHEN v_both
                   THEN (extract(day FROM d)::integer = ANY (v_dom) OR (v_last AND extract(day FROM d + interval '1 day') = 1))
                        AND extract(dow FROM d)::integer = ANY (v_dow)
                   ELSE extract(day FROM d)::integer = ANY (v_dom) OR (v_last AND extract(day FROM d + interval '1 day') = 1)
                        OR extract(dow FROM d)::integer = ANY (v_dow) END
        ORDER BY 1);
    IF cardinality(v_days) < 2 THEN
        RETURN NULL;  -- never runs (30 February), or too seldom to bound (29 February of one weekday)
    END IF;
    -- Within a day that runs, and from a day's last run to the next such day's first.
    SELECT greatest(
        (SELECT coalesce(max(g), 0) FROM (SELECT lead(t) OVER (ORDER BY t) - t AS g FROM unnest(v_times) t) x),
        (SELECT max(g) FROM (SELECT (lead(d) OVER (ORDER BY d) - d) * 1440 AS g FROM unnest(v_days) d) y)
            + v_times[1] - v_times[cardinality(v_times)])
    INTO v_gap;
    RETURN make_interval(mins => v_gap);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._cron_period(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._cron_period(text) IS
    'Internal (cron_job_lateness): the period of a pg_cron schedule, the longest wait between two runs it allows (GMT, minute granularity): ''*/10 * * * *'' 10 minutes, ''7 3 * * *'' a day, ''0 9 * * 1-5'' 3 days, @monthly 31 days, ''30 seconds'' 30 seconds. NULL when it cannot bound one: @reboot, a schedule that never runs or runs less than twice in 28 years, or a string pg_cron would not read. Raises nothing.';

-- Twice the period: one missed run is no alarm (pg_cron skips a run while the last one is
-- still going), two are. A job still running counts from its start, so one stuck in a
-- run is late too.
CREATE FUNCTION whatsapp_handler.cron_job_lateness()
RETURNS TABLE (job_name text, schedule text, period_seconds double precision, last_run_at timestamptz,
               scheduled_at timestamptz, age_seconds double precision, overdue boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT l.cron_job_name, l.schedule, extract(epoch FROM l.period)::double precision, l.last_start, l.scheduled_at,
           extract(epoch FROM now() - l.since)::double precision, now() - l.since > 2 * l.period
    FROM (SELECT j.cron_job_name, j.schedule, _cron_period(j.schedule) AS period, r.last_start, j.scheduled_at,
                 greatest(r.last_start, j.scheduled_at) AS since
          FROM jobs j
          LEFT JOIN _cron_job_last_runs() r ON r.job_name = j.cron_job_name
          WHERE j.enabled) l
    ORDER BY l.cron_job_name
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.cron_job_lateness() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.cron_job_lateness() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.cron_job_lateness() IS
    'For /metrics and doctor: per enabled job of whatsapp_handler.jobs, its pg_cron name, schedule, period in seconds (_cron_period: the longest wait between two runs; NULL when the schedule cannot be bounded), when its last run started (NULL: none in cron.job_run_details), scheduled_at (when it was enabled or its schedule changed), the seconds since the later of the two, and overdue: more than twice the period (NULL when the period is). A job missing from cron.job, or scheduled for another role, counts as never run. Raises nothing.';

COMMIT;
