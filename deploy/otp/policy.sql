-- Deploy whatsapp_handler:otp/policy to pg
-- requires: jobs/settings core/assert_function
-- The per-phone OTP policy (how long a code lives, how often a phone may ask, how many wrong
-- codes lock it) as settings rows a DBA changes without a deploy, read through one function;
-- and the one shape in which a refusal tells the relay when to ask again.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('otp.code_ttl', '"10 minutes"', 'How long an OTP code can be verified after it was issued (at least 1 minute).'),
    ('otp.cooldown', '"60 seconds"', 'The least time between two codes for one phone; a request sooner is refused with WH005 (0 seconds or more).'),
    ('otp.window', '"1 hour"', 'The period over which otp.per_window codes per phone are counted (WH006); also how long wrong codes carry over to a new code and how long a phone locked by otp.max_failures waits (WH007) (at least 1 minute; keep retention.otp_challenges at least this long).'),
    ('otp.per_window', '5', 'OTP codes one phone may be issued within otp.window (1-1000).'),
    ('otp.max_failures', '5', 'Wrong codes that lock a phone''s challenge; they survive a new code for otp.window (1-100).');

CREATE FUNCTION whatsapp_handler._otp_policy(OUT code_ttl interval, OUT cooldown interval, OUT rate_window interval,
                                             OUT per_window integer, OUT max_failures integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    code_ttl := _setting_interval('otp.code_ttl', interval '1 minute');
    cooldown := _setting_interval('otp.cooldown', interval '0 seconds');
    rate_window := _setting_interval('otp.window', interval '1 minute');
    per_window := _setting_integer('otp.per_window', 1, 1000);
    max_failures := _setting_integer('otp.max_failures', 1, 100);
    -- A JSON null reads as "no value" for the jobs (keep forever); the policy has no "off".
    IF code_ttl IS NULL OR cooldown IS NULL OR rate_window IS NULL THEN
        RAISE EXCEPTION 'setting % is null, not an interval',
                        CASE WHEN code_ttl IS NULL THEN 'otp.code_ttl' WHEN cooldown IS NULL THEN 'otp.cooldown' ELSE 'otp.window' END
            USING ERRCODE = 'WH020',
                  HINT = 'UPDATE whatsapp_handler.settings SET value = ''"10 minutes"'' WHERE key = ... (a JSON string PostgreSQL reads as an interval).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._otp_policy() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._otp_policy() IS
    'Internal: the per-phone OTP policy from settings otp.code_ttl, otp.cooldown, otp.window (as rate_window), otp.per_window and otp.max_failures, each checked. Raises WH011 when one is missing, WH020 when one is out of range or null.';

-- The relay reads DETAIL as JSON (app/errors.py): a number, never text to be matched.
CREATE FUNCTION whatsapp_handler._retry_after(p_seconds numeric)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT jsonb_build_object('retry_after_seconds', greatest(ceil(p_seconds), 1)::integer)::text
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._retry_after(numeric) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._retry_after(numeric) IS
    'Internal: the DETAIL of a refusal worth retrying later, {"retry_after_seconds": N} with N the whole seconds (at least 1) rounded up; the relay answers it with Retry-After: N. Raises nothing.';

COMMIT;
