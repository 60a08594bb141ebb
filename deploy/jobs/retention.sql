-- Deploy whatsapp_handler:jobs/retention to pg
-- Reworked after v1.0.0: job_retention also trims the send API's idempotency keys
-- (send_requests, setting retention.send_requests) and the dead-letter history
-- (dead_letter_history, setting retention.dead_letter_history). Only job_retention changed: the
-- rest of the change (its index, the cron history trim) is as deploy/jobs/retention@v1.0.0.sql made it.
-- requires: sending/send queue/dead_letter_history
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.job_retention()
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
    v_requests interval := _setting_interval('retention.send_requests', interval '1 hour');
    v_history  interval := _setting_interval('retention.dead_letter_history', interval '1 day');
    v_queues   jsonb;
    v_otp_n    bigint := 0;
    v_keys_n   bigint := 0;
    v_req_n    bigint := 0;
    v_hist_n   bigint := 0;
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

    -- Idempotency keys of sends (sending/send): a retry comes within minutes; past the
    -- period the same key is a new message.
    IF v_requests IS NOT NULL THEN
        DELETE FROM send_requests WHERE (api_key_id, idempotency_key) IN (
            SELECT api_key_id, idempotency_key FROM send_requests
            WHERE created_at < now() - v_requests ORDER BY created_at LIMIT v_batch);
        GET DIAGNOSTICS v_req_n = ROW_COUNT;
    END IF;

    -- The dead-letter history (queue/dead_letter_history), oldest first.
    IF v_history IS NOT NULL THEN
        DELETE FROM dead_letter_history WHERE id IN (
            SELECT id FROM dead_letter_history WHERE created_at < now() - v_history ORDER BY created_at LIMIT v_batch);
        GET DIAGNOSTICS v_hist_n = ROW_COUNT;
    END IF;

    RETURN jsonb_build_object('queue_archives', v_queues, 'otp_challenges', v_otp_n, 'message_keys', v_keys_n,
                              'send_requests', v_req_n, 'dead_letter_history', v_hist_n);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_retention() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_retention() IS
    'Row retention (cron job whatsapp_handler.retention): deletes archived pgmq messages of outbox, outbound, inbound_dlq, outbox_dlq and outbound_dlq older than retention.queue_archives, OTP challenges resolved or expired longer than retention.otp_challenges ago, message_keys of messages older than retention.messages, send_requests (idempotency keys) older than retention.send_requests, and rows of the dead-letter history older than retention.dead_letter_history; at most retention.batch_size rows per table per run (a null period keeps those rows). Returns {queue_archives: {<queue>: n}, otp_challenges: n, message_keys: n, send_requests: n, dead_letter_history: n}. Raises WH011 or WH020 for a missing or malformed setting.';

COMMIT;
