-- Deploy whatsapp_handler:jobs/retention to pg
-- requires: jobs/settings otp/challenges messages/messages queue/outbox queue/outbound queue/inbound_dlq queue/dead_letters queue/archive core/pg_cron
-- Row retention, the bodies of the cron jobs `whatsapp_handler.retention` and
-- `whatsapp_handler.cron_history`. Raw webhooks, messages and statuses go by partition
-- (job_partitions); what is not partitioned is deleted here in bounded batches, so
-- that one run stays short and a backlog is worked off over several runs.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- message_keys is insert-only in message_created_at order: a BRIN index finds the old
-- keys for a few pages of index, at no measurable cost to ingestion.
CREATE INDEX message_keys_message_created_at_brin ON whatsapp_handler.message_keys USING brin (message_created_at);

CREATE FUNCTION whatsapp_handler.job_retention()
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_batch    integer := _setting_integer('retention.batch_size', 1, 1000000);
    v_archives interval := _setting_interval('retention.queue_archives');
    v_otp      interval := _setting_interval('retention.otp_challenges', interval '1 hour');
    v_messages interval := _setting_interval('retention.messages', interval '1 day');
    v_queues   jsonb;
    v_otp_n    bigint := 0;
    v_keys_n   bigint := 0;
BEGIN
    -- Archived queue messages: pgmq keeps them forever unless deleted (queue/archive).
    v_queues := _trim_archives(now() - v_archives, v_batch);

    -- OTP challenges once resolved (verified, locked, superseded, expired) or expired unused.
    IF v_otp IS NOT NULL THEN
        DELETE FROM otp_challenges WHERE id IN (
            SELECT id FROM otp_challenges
            WHERE (status <> 'pending' AND resolved_at < now() - v_otp)
               OR (status = 'pending' AND expires_at < now() - v_otp)
            ORDER BY id LIMIT v_batch);
        GET DIAGNOSTICS v_otp_n = ROW_COUNT;
    END IF;

    -- De-duplication keys of messages past the messages retention.
    IF v_messages IS NOT NULL THEN
        DELETE FROM message_keys WHERE (channel_id, provider_message_id) IN (
            SELECT channel_id, provider_message_id FROM message_keys
            WHERE message_created_at < now() - v_messages LIMIT v_batch);
        GET DIAGNOSTICS v_keys_n = ROW_COUNT;
    END IF;

    RETURN jsonb_build_object('queue_archives', v_queues, 'otp_challenges', v_otp_n, 'message_keys', v_keys_n);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_retention() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_retention() IS
    'Row retention (cron job whatsapp_handler.retention): deletes archived pgmq messages of outbox, outbound, inbound_dlq, outbox_dlq and outbound_dlq older than retention.queue_archives, OTP challenges resolved or expired longer than retention.otp_challenges ago, and message_keys of messages older than retention.messages; at most retention.batch_size rows per table per run (a null period keeps those rows). Returns {queue_archives: {<queue>: n}, otp_challenges: n, message_keys: n}. Raises WH011 or WH020 for a missing or malformed setting.';

-- pg_cron's history is behind row level security: a role sees, and may delete, the runs of
-- its own jobs. The jobs run as whatsapp_handler_cron (jobs/jobs), so the delete is made as
-- that login by _trim_cron_history, which it owns: whatsapp_handler_owner's members can
-- neither redefine it nor make the job run as anyone with more rights than that login.
RESET ROLE;
GRANT USAGE ON SCHEMA cron TO whatsapp_handler_cron;
CREATE FUNCTION whatsapp_handler._trim_cron_history(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    DELETE FROM cron.job_run_details WHERE end_time < p_before;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
ALTER FUNCTION whatsapp_handler._trim_cron_history(timestamptz) OWNER TO whatsapp_handler_cron;
REVOKE ALL ON FUNCTION whatsapp_handler._trim_cron_history(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler._trim_cron_history(timestamptz) TO whatsapp_handler_owner;
COMMENT ON FUNCTION whatsapp_handler._trim_cron_history(timestamptz) IS
    'Internal (job_trim_cron_history): deletes the rows of cron.job_run_details that ended before p_before and belong to the jobs of whatsapp_handler_cron, which owns this function (pg_cron shows a role its own runs only). Returns how many. Raises nothing.';

SET LOCAL ROLE whatsapp_handler_owner;
CREATE FUNCTION whatsapp_handler.job_trim_cron_history()
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_period interval := _setting_interval('retention.cron_history', interval '1 hour');
    v_count  bigint := 0;
BEGIN
    IF v_period IS NOT NULL THEN
        v_count := _trim_cron_history(now() - v_period);
    END IF;
    RETURN jsonb_build_object('job_run_details', v_count);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_trim_cron_history() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_trim_cron_history() IS
    'pg_cron history trim (cron job whatsapp_handler.cron_history): deletes the runs of the jobs of whatsapp_handler_cron (the project''s jobs) in cron.job_run_details that ended longer than retention.cron_history ago, through _trim_cron_history. Returns {job_run_details: n}. Raises WH011 or WH020 for a missing or malformed setting.';

COMMIT;
