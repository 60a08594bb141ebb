-- Deploy whatsapp_handler:jobs/settings to pg
-- requires: core/settings core/assert_function
-- The periods and limits of the scheduled jobs (docs/jobs.md), as rows of the settings
-- table a DBA changes with UPDATE, and the two helpers that read them checked.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('partitions.webhook_events.ahead', '7', 'Daily partitions of webhook_events made ahead of today by the partitions job (0-400).'),
    ('partitions.messages.ahead', '2', 'Monthly partitions of messages made ahead of this month by the partitions job (0-400).'),
    ('partitions.message_status_events.ahead', '2', 'Monthly partitions of message_status_events made ahead of this month by the partitions job (0-400).'),
    ('retention.webhook_events', '"30 days"', 'Raw webhook bodies: a daily partition is dropped once all of it is older than this (at least 1 day; null keeps them).'),
    ('retention.messages', '"24 months"', 'Messages: a monthly partition is dropped once all of it is older than this, and their de-duplication keys go with them (at least 1 day; null keeps them).'),
    ('retention.message_status_events', '"24 months"', 'Delivery statuses: a monthly partition is dropped once all of it is older than this (at least 1 day; null keeps them).'),
    ('retention.queue_archives', '"7 days"', 'Archived pgmq messages of the project''s queues (a_outbox, a_outbound, a_inbound_dlq, a_outbox_dlq, a_outbound_dlq) are deleted past this.'),
    ('retention.otp_challenges', '"1 day"', 'OTP challenges are deleted this long after they were resolved (verified, locked, superseded, expired) or expired unused (at least 1 hour: the rate limits look back an hour).'),
    ('retention.cron_history', '"7 days"', 'Rows of cron.job_run_details are deleted this long after the run ended.'),
    ('retention.batch_size', '50000', 'At most this many rows per table per run of the retention job (1-1000000).'),
    ('gdpr.inactive_after', '"24 months"', 'Users not active for this long (users.last_active_at, or created_at when never active) are erased by the GDPR job (at least 1 day).'),
    ('gdpr.batch_size', '100', 'At most this many users erased per run of the GDPR job (1-10000).'),
    ('redrive.inbound.max_attempts', '10', 'Re-drive attempts of an inbound dead letter before it is parked for a person (1-1000).'),
    ('redrive.inbound.backoff', '"1 minute"', 'Wait after the first failed re-drive of an inbound dead letter; doubles with each further failure.'),
    ('redrive.inbound.backoff_max', '"6 hours"', 'The longest wait between two re-drives of an inbound dead letter.'),
    ('redrive.outbound.max_redrives', '5', 'Re-drives of an outbound message dead-lettered while its provider was down before it is parked for a person (0-1000).'),
    ('redrive.outbound.backoff', '"5 minutes"', 'Age an outbound dead letter must reach before its first re-drive; doubles with each re-drive.'),
    ('redrive.outbound.backoff_max', '"6 hours"', 'The longest age an outbound dead letter must reach before it is re-driven.');

CREATE FUNCTION whatsapp_handler._setting_interval(p_key text, p_min interval DEFAULT interval '0')
RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_value jsonb := _setting(p_key);
    v       interval;
BEGIN
    IF v_value = 'null' THEN
        RETURN NULL;
    END IF;
    BEGIN
        v := (v_value #>> '{}')::interval;
    EXCEPTION WHEN data_exception THEN
        v := NULL;
    END;
    IF jsonb_typeof(v_value) <> 'string' OR v IS NULL OR v < p_min THEN
        RAISE EXCEPTION 'setting % is %, not an interval of at least %', p_key, v_value, p_min
            USING ERRCODE = 'WH020',
                  HINT = format('UPDATE whatsapp_handler.settings SET value = ''"30 days"'' WHERE key = %L (a JSON string PostgreSQL reads as an interval, at least %s).',
                                p_key, p_min);
    END IF;
    RETURN v;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._setting_interval(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._setting_interval(text, interval) IS
    'Internal: a setting read as an interval (a JSON string such as "30 days"); NULL when the value is JSON null. Raises WH011 when the setting is missing, WH020 when it is not an interval of at least p_min.';

CREATE FUNCTION whatsapp_handler._setting_integer(p_key text, p_min integer, p_max integer)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_value jsonb := _setting(p_key);
BEGIN
    IF jsonb_typeof(v_value) <> 'number' OR (v_value #>> '{}')::numeric NOT BETWEEN p_min AND p_max
       OR (v_value #>> '{}')::numeric <> trunc((v_value #>> '{}')::numeric) THEN
        RAISE EXCEPTION 'setting % is %, not a whole number from % to %', p_key, v_value, p_min, p_max
            USING ERRCODE = 'WH020',
                  HINT = format('UPDATE whatsapp_handler.settings SET value = ''%s'' WHERE key = %L (a JSON number from %s to %s).',
                                p_min, p_key, p_min, p_max);
    END IF;
    RETURN (v_value #>> '{}')::integer;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._setting_integer(text, integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._setting_integer(text, integer, integer) IS
    'Internal: a setting read as a whole number between p_min and p_max. Raises WH011 when the setting is missing, WH020 when it is not such a number.';

COMMIT;
