-- Deploy whatsapp_handler:jobs/erase_inactive_users to pg
-- requires: jobs/settings users/erase_user users/users
-- GDPR storage limitation, the body of the cron job `whatsapp_handler.gdpr_inactive_users`:
-- people inactive longer than gdpr.inactive_after are erased by erase_user, one bounded
-- batch per run, each in its own savepoint.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.job_erase_inactive_users(p_limit integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := now() - _setting_interval('gdpr.inactive_after', interval '1 day');
    v_limit  integer := coalesce(p_limit, _setting_integer('gdpr.batch_size', 1, 10000));
    v_id     bigint;
    v_erased integer := 0;
    v_failed integer := 0;
    v_error  text;
BEGIN
    IF v_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'a GDPR batch is 1 to 10000 users, not %', v_limit
            USING ERRCODE = 'WH024', HINT = 'Pass p_limit from 1 to 10000, or NULL for gdpr.batch_size.';
    END IF;
    IF v_cutoff IS NULL THEN
        RETURN jsonb_build_object('erased', 0, 'failed', 0, 'remaining', false);  -- gdpr.inactive_after null: never
    END IF;
    FOR v_id IN
        -- Two index scans of users_last_active_at_idx; a user never active (an OTP request
        -- alone, say) counts as inactive since its row was made. erase_user locks each one.
        SELECT u.id FROM (
            (SELECT id, last_active_at FROM users
             WHERE erased_at IS NULL AND last_active_at < v_cutoff ORDER BY last_active_at LIMIT v_limit)
            UNION ALL
            (SELECT id, NULL FROM users
             WHERE erased_at IS NULL AND last_active_at IS NULL AND created_at < v_cutoff LIMIT v_limit)
        ) u
        ORDER BY u.last_active_at NULLS FIRST, u.id
        LIMIT v_limit
    LOOP
        BEGIN
            IF erase_user(v_id) THEN
                v_erased := v_erased + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
            v_failed := v_failed + 1;
            RAISE WARNING 'user % not erased: %', v_id, v_error;
        END;
    END LOOP;
    RETURN jsonb_build_object('erased', v_erased, 'failed', v_failed,
        'remaining', EXISTS (SELECT FROM users WHERE erased_at IS NULL AND last_active_at < v_cutoff)
                     OR EXISTS (SELECT FROM users WHERE erased_at IS NULL AND last_active_at IS NULL AND created_at < v_cutoff));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_erase_inactive_users(integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_erase_inactive_users(integer) IS
    'GDPR inactivity (cron job whatsapp_handler.gdpr_inactive_users): erases, with erase_user, up to p_limit (default gdpr.batch_size) users whose last_active_at (created_at when never active) is older than gdpr.inactive_after (never active first, then longest inactive), each in its own savepoint. Returns {erased, failed, remaining}; remaining says more users are due (run it again). Raises WH024 for p_limit outside 1-10000, WH011 or WH020 for a missing or malformed setting.';

COMMIT;
