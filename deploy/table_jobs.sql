-- Deploy whatsapp_handler:table_jobs to pg
-- requires: extension_pg_cron fn_job_partitions fn_job_retention fn_job_erase_inactive_users fn_redrive_inbound fn_redrive_outbound
-- The scheduled jobs as data (docs/jobs.md): one row per job, kept in step with pg_cron's
-- cron.job by a trigger, so that a DBA changes a schedule, or turns a job off, with an
-- UPDATE and no deploy. Each job is named whatsapp_handler.<name> in cron.job.
--
-- pg_cron runs a job as the role that scheduled it, and whatsapp_handler_owner cannot
-- log in; so the rows are written (and the jobs scheduled) by the deploying login role,
-- and each job's command calls a SECURITY DEFINER function that does its work as the
-- owner. The trigger refuses a change made as a role that cannot log in (WH021).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.jobs (
    name          text PRIMARY KEY CONSTRAINT jobs_name_shape CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    function      text NOT NULL CONSTRAINT jobs_function_shape CHECK (function ~ '^(job|redrive)_[a-z0-9_]{1,56}$'),
    schedule      text NOT NULL CONSTRAINT jobs_schedule_length CHECK (char_length(schedule) BETWEEN 1 AND 100),
    enabled       boolean NOT NULL DEFAULT true,
    description   text NOT NULL,
    cron_job_name text NOT NULL GENERATED ALWAYS AS ('whatsapp_handler.' || name) STORED,
    command       text NOT NULL GENERATED ALWAYS AS ('SELECT whatsapp_handler.' || function || '()') STORED
);
COMMENT ON TABLE whatsapp_handler.jobs IS 'The pg_cron jobs of whatsapp-handler: change schedule or enabled with UPDATE (as a login role, which the job then runs as) and cron.job follows; enabled = false removes the job from cron.job. docs/jobs.md.';
COMMENT ON COLUMN whatsapp_handler.jobs.function IS 'A function of schema whatsapp_handler named job_* or redrive_* that takes no argument (or only ones with defaults).';
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
    -- Gone, renamed or turned off: out of cron.job. A role sees its own jobs there
    -- (a superuser all of them), so a job scheduled by another role must be changed by it.
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
    IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'job %: pg_cron would run it as %, which cannot log in', NEW.name, current_user
            USING ERRCODE = 'WH021',
                  HINT = 'pg_cron runs a job as the role that schedules it: RESET ROLE and change whatsapp_handler.jobs as the login role that deployed (a superuser, or a member of whatsapp_handler_owner allowed to use pg_cron).';
    END IF;
    -- One job of this name: the same name scheduled by another role (visible to a superuser) goes.
    FOR v_job IN SELECT jobid FROM cron.job WHERE jobname = NEW.cron_job_name AND username <> current_user LOOP
        PERFORM cron.unschedule(v_job);
    END LOOP;
    BEGIN
        -- Inserts or updates the caller's job of this name.
        PERFORM cron.schedule(NEW.cron_job_name, NEW.schedule, NEW.command);
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
    'Trigger of whatsapp_handler.jobs (SECURITY INVOKER: pg_cron schedules a job as its caller): schedules an enabled job in cron.job as whatsapp_handler.<name>, and unschedules a deleted, renamed or disabled one. Raises WH021 when the caller cannot log in (pg_cron could not run the job as it), WH022 for a schedule pg_cron refuses, WH023 when the function does not exist or needs arguments.';

CREATE TRIGGER jobs_sync_cron_job
AFTER INSERT OR UPDATE OR DELETE ON whatsapp_handler.jobs
FOR EACH ROW EXECUTE FUNCTION whatsapp_handler._sync_cron_job();

-- Scheduled as the deploying role (see above), not as the owner.
RESET ROLE;
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
