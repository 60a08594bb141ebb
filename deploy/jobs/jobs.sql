-- Deploy whatsapp_handler:jobs/jobs to pg
-- requires: core/pg_cron jobs/partitions jobs/retention jobs/erase_inactive_users jobs/redrive_inbound jobs/redrive_outbound
-- The scheduled jobs as data (docs/jobs.md): one row per job, kept in step with pg_cron's
-- cron.job by a trigger, so that a DBA changes a schedule, or turns a job off, with an
-- UPDATE and no deploy. Each job is named whatsapp_handler.<name> in cron.job.
--
-- pg_cron runs a job as the role it was scheduled for. Every job runs as the login
-- whatsapp_handler_cron (core/roles), which holds nothing but USAGE on the schema and
-- EXECUTE on the job functions (granted here): a job function that a member of
-- whatsapp_handler_owner redefines runs as the owner (SECURITY DEFINER) or as that login
-- (SECURITY INVOKER), never as a superuser. Scheduling a job for another role is a
-- superuser's right (cron.schedule_in_database), so the table and its trigger belong to
-- the deploying superuser, not to the owner (whose members could otherwise redefine the
-- trigger a superuser then runs): a superuser changes the rows, the trigger refuses anyone
-- else (WH021), and the owner may only read them (cron_job_failures).
BEGIN;

CREATE TABLE whatsapp_handler.jobs (
    name          text PRIMARY KEY CONSTRAINT jobs_name_shape CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    function      text NOT NULL CONSTRAINT jobs_function_shape CHECK (function ~ '^(job|redrive)_[a-z0-9_]{1,56}$'),
    schedule      text NOT NULL CONSTRAINT jobs_schedule_length CHECK (char_length(schedule) BETWEEN 1 AND 100),
    enabled       boolean NOT NULL DEFAULT true,
    description   text NOT NULL,
    cron_job_name text NOT NULL GENERATED ALWAYS AS ('whatsapp_handler.' || name) STORED,
    command       text NOT NULL GENERATED ALWAYS AS ('SELECT whatsapp_handler.' || function || '()') STORED
);
COMMENT ON TABLE whatsapp_handler.jobs IS 'The pg_cron jobs of whatsapp-handler, run as the login whatsapp_handler_cron: change schedule or enabled with UPDATE (as a superuser) and cron.job follows; enabled = false removes the job from cron.job. Owned by the deploying superuser, readable by the owner. docs/jobs.md.';
COMMENT ON COLUMN whatsapp_handler.jobs.function IS 'A function of schema whatsapp_handler named job_* or redrive_* that takes no argument (or only ones with defaults) and that whatsapp_handler_cron may execute.';
GRANT SELECT ON whatsapp_handler.jobs TO whatsapp_handler_owner;
COMMENT ON COLUMN whatsapp_handler.jobs.schedule IS 'pg_cron schedule: five cron fields (minute granularity, GMT) or @hourly, @daily, ...';
COMMENT ON COLUMN whatsapp_handler.jobs.cron_job_name IS 'The job''s name in cron.job.';
COMMENT ON COLUMN whatsapp_handler.jobs.command IS 'The command pg_cron runs.';

CREATE FUNCTION whatsapp_handler._sync_cron_job()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_job bigint;
BEGIN
    -- Only a superuser may schedule a job for whatsapp_handler_cron; refused before cron.job
    -- is touched, deletions included (a superuser sees, and unschedules, every job).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'job %: changed by %, which is not a superuser',
                CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END, current_user
            USING ERRCODE = 'WH021',
                  HINT = 'The jobs run as the login whatsapp_handler_cron, and only a superuser may schedule a pg_cron job for another role: change whatsapp_handler.jobs as a superuser (RESET ROLE first).';
    END IF;
    -- Gone, renamed or turned off: out of cron.job, whoever it was scheduled for.
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.name <> NEW.name OR NOT NEW.enabled)) THEN
        FOR v_job IN SELECT jobid FROM cron.job WHERE jobname = OLD.cron_job_name LOOP
            PERFORM cron.unschedule(v_job);
        END LOOP;
    END IF;
    IF TG_OP = 'DELETE' OR NOT NEW.enabled THEN
        RETURN NULL;
    END IF;

    IF NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'whatsapp_handler'::regnamespace
                   AND proname = NEW.function AND pronargs = pronargdefaults) THEN
        RAISE EXCEPTION 'job %: no function whatsapp_handler.%() to run', NEW.name, NEW.function
            USING ERRCODE = 'WH023',
                  HINT = 'Name a job_* or redrive_* function of schema whatsapp_handler that needs no argument.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'whatsapp_handler_cron' AND rolcanlogin AND NOT rolsuper)
       OR NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'whatsapp_handler'::regnamespace
                      AND proname = NEW.function AND pronargs = pronargdefaults
                      AND has_function_privilege('whatsapp_handler_cron', oid, 'EXECUTE')) THEN
        RAISE EXCEPTION 'job %: the jobs login whatsapp_handler_cron is missing, a superuser, or may not execute whatsapp_handler.%()',
                NEW.name, NEW.function
            USING ERRCODE = 'WH040',
                  HINT = 'Deploy core/roles (it creates the login), and GRANT EXECUTE ON FUNCTION whatsapp_handler.'
                         || NEW.function || '(...) TO whatsapp_handler_cron in the change that adds the job.';
    END IF;
    -- One job of this name: the same name scheduled for another role goes.
    FOR v_job IN SELECT jobid FROM cron.job WHERE jobname = NEW.cron_job_name AND username <> 'whatsapp_handler_cron' LOOP
        PERFORM cron.unschedule(v_job);
    END LOOP;
    BEGIN
        -- Inserts or updates the job of this name run as whatsapp_handler_cron in this database.
        PERFORM cron.schedule_in_database(NEW.cron_job_name, NEW.schedule, NEW.command, current_database(),
                                          'whatsapp_handler_cron', true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'job %: % is not a pg_cron schedule', NEW.name, NEW.schedule
            USING ERRCODE = 'WH022',
                  HINT = 'Five cron fields in GMT with minute granularity (''*/10 * * * *'', ''7 3 * * *''), or @hourly, @daily, @weekly.';
    END;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._sync_cron_job() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._sync_cron_job() IS
    'Trigger of whatsapp_handler.jobs (SECURITY INVOKER, owned by the deploying superuser): schedules an enabled job in cron.job as whatsapp_handler.<name>, run as the login whatsapp_handler_cron in this database, and unschedules a deleted, renamed or disabled one. Raises WH021 when the caller is not a superuser (only a superuser may schedule a job for another role), WH022 for a schedule pg_cron refuses, WH023 when the function does not exist or needs arguments, WH040 when whatsapp_handler_cron is missing, a superuser, or may not execute the function.';

CREATE TRIGGER jobs_sync_cron_job
AFTER INSERT OR UPDATE OR DELETE ON whatsapp_handler.jobs
FOR EACH ROW EXECUTE FUNCTION whatsapp_handler._sync_cron_job();

-- The jobs' login runs the job functions, and nothing else.
GRANT USAGE ON SCHEMA whatsapp_handler TO whatsapp_handler_cron;
GRANT EXECUTE ON FUNCTION whatsapp_handler.job_partitions(), whatsapp_handler.job_retention(),
    whatsapp_handler.job_trim_cron_history(), whatsapp_handler.job_erase_inactive_users(integer),
    whatsapp_handler.redrive_inbound(integer, bigint[]), whatsapp_handler.redrive_outbound(integer, bigint[])
    TO whatsapp_handler_cron;

INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) VALUES
    ('partitions', 'job_partitions', '7 * * * *',
     'Makes partitions ahead and drops those past retention (partitions.*.ahead, retention.webhook_events, retention.messages, retention.message_status_events).'),
    ('retention', 'job_retention', '*/10 * * * *',
     'Deletes archived queue messages, old OTP challenges and old message keys in batches (retention.queue_archives, retention.otp_challenges, retention.messages, retention.batch_size).'),
    ('cron_history', 'job_trim_cron_history', '17 3 * * *',
     'Trims cron.job_run_details (retention.cron_history).'),
    ('gdpr_inactive_users', 'job_erase_inactive_users', '37 * * * *',
     'Erases users inactive longer than gdpr.inactive_after, gdpr.batch_size per run.'),
    ('redrive_inbound', 'redrive_inbound', '* * * * *',
     'Re-runs inbound dead letters with backoff, parks them after redrive.inbound.max_attempts.'),
    ('redrive_outbound', 'redrive_outbound', '* * * * *',
     'Puts outbound messages dead-lettered while their provider was down back on outbound with backoff, parks them after redrive.outbound.max_redrives.');

COMMIT;
