-- Deploy whatsapp_handler:delivery/provider_errors to pg
-- requires: delivery/worker delivery/pacing consent/consents queue/outbound core/channels core/assert_function
-- What a provider's error code means for the message, decided once, here: the worker reads
-- the code from the provider's answer and hands it to worker_failed, which looks it up in
-- provider_errors and acts (dead letter with the reason, retry, or pace the channel or the
-- person). An operator changes an outcome with an UPDATE of provider_errors, no release.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.provider_errors (
    provider    whatsapp_handler.provider NOT NULL,
    code        text NOT NULL CONSTRAINT provider_errors_code_shape CHECK (code ~ '^[0-9]{1,12}$'),
    -- permanent: dead-lettered (rejected) and marked failed; retry: tried again with backoff until the
    -- worker's attempts are spent; throttle_*: put back untried and the bucket pushed later (delivery/pacing).
    outcome     text NOT NULL CONSTRAINT provider_errors_outcome CHECK (outcome IN ('permanent', 'retry', 'throttle_channel', 'throttle_pair')),
    reason      text NOT NULL CONSTRAINT provider_errors_reason_shape CHECK (reason ~ '^[a-z][a-z_]{0,39}$'),
    description text NOT NULL CONSTRAINT provider_errors_description_length CHECK (char_length(description) BETWEEN 1 AND 300),
    PRIMARY KEY (provider, code)
);
COMMENT ON TABLE whatsapp_handler.provider_errors IS
    'Each provider error code and what it means for the message: outcome (permanent, retry, throttle_channel, throttle_pair) and the reason a dead letter and a failed status carry. Read by worker_failed; an operator may UPDATE an outcome. A code not listed follows the HTTP status (429, 5xx: retry; other 4xx: permanent).';

-- Meta: the Cloud API's codes (error.code), which it mostly answers with HTTP 400.
-- Twilio: the Messages API's error codes (code), answered with HTTP 400 or 429.
INSERT INTO whatsapp_handler.provider_errors (provider, code, outcome, reason, description) VALUES
    ('meta', '1', 'retry', 'transient', 'API unknown: possibly a temporary outage'),
    ('meta', '2', 'retry', 'transient', 'API service temporarily unavailable'),
    ('meta', '4', 'throttle_channel', 'throttled', 'the app reached its API call rate limit'),
    ('meta', '17', 'throttle_channel', 'throttled', 'the user reached its API call rate limit'),
    ('meta', '341', 'throttle_channel', 'throttled', 'the application limit was reached'),
    ('meta', '613', 'throttle_channel', 'throttled', 'calls over the rate limit of the last hour'),
    ('meta', '80007', 'throttle_channel', 'throttled', 'the WhatsApp Business Account reached its rate limit'),
    ('meta', '130429', 'throttle_channel', 'throttled', 'the phone number reached the Cloud API''s throughput'),
    ('meta', '131056', 'throttle_pair', 'throttled', 'too many messages from this business number to this person in a short time (pair rate limit)'),
    ('meta', '131000', 'retry', 'transient', 'something went wrong at Meta'),
    ('meta', '131016', 'retry', 'transient', 'a service is temporarily unavailable'),
    ('meta', '133004', 'retry', 'transient', 'the server is temporarily unavailable'),
    ('meta', '131047', 'permanent', 'outside_window', 'more than 24 hours since the person last wrote: only a template may go'),
    ('meta', '131026', 'permanent', 'undeliverable', 'the message could not be delivered (no WhatsApp on the number, an old app, or new terms not accepted)'),
    ('meta', '131050', 'permanent', 'marketing_opt_out', 'the person stopped marketing messages from this business'),
    ('meta', '131049', 'permanent', 'ecosystem_limit', 'Meta chose not to deliver this marketing message, to keep engagement healthy'),
    ('meta', '131048', 'permanent', 'spam_limit', 'the number is restricted: too many of its messages were blocked or flagged'),
    ('meta', '131008', 'permanent', 'bad_request', 'a required parameter is missing'),
    ('meta', '131009', 'permanent', 'bad_request', 'a parameter value is not valid'),
    ('meta', '131021', 'permanent', 'bad_request', 'the recipient is the sender''s own number'),
    ('meta', '131051', 'permanent', 'bad_request', 'unsupported message type'),
    ('meta', '131052', 'permanent', 'media_error', 'the media sent by the person could not be downloaded'),
    ('meta', '131053', 'permanent', 'media_error', 'the media could not be uploaded'),
    ('meta', '131031', 'permanent', 'account_locked', 'the business account is locked'),
    ('meta', '131042', 'permanent', 'payment', 'a payment problem of the business account'),
    ('meta', '368', 'permanent', 'policy_block', 'the business is temporarily blocked for policy violations'),
    ('meta', '132000', 'permanent', 'template_error', 'the number of template parameters does not match the template'),
    ('meta', '132001', 'permanent', 'template_error', 'the template does not exist in this language'),
    ('meta', '132005', 'permanent', 'template_error', 'the template is too long once its parameters are filled'),
    ('meta', '132007', 'permanent', 'template_error', 'the template breaks the format character policy'),
    ('meta', '132012', 'permanent', 'template_error', 'a template parameter has the wrong format'),
    ('meta', '132015', 'permanent', 'template_error', 'the template is paused for low quality'),
    ('meta', '132016', 'permanent', 'template_error', 'the template is disabled'),
    ('meta', '132068', 'permanent', 'template_error', 'the template''s flow is blocked'),
    ('meta', '132069', 'permanent', 'template_error', 'the template''s flow is throttled'),
    ('twilio', '63016', 'permanent', 'outside_window', 'a free-form message outside the 24-hour window: only a template may go'),
    ('twilio', '63018', 'throttle_channel', 'throttled', 'rate limit exceeded for the channel (the sender''s throughput)'),
    ('twilio', '63038', 'throttle_channel', 'throttled', 'the account exceeded its daily messages limit'),
    ('twilio', '20429', 'throttle_channel', 'throttled', 'too many requests to the API'),
    ('twilio', '21211', 'permanent', 'invalid_number', 'the To number is not a valid phone number'),
    ('twilio', '21614', 'permanent', 'invalid_number', 'the To number is not a valid mobile number'),
    ('twilio', '63024', 'permanent', 'invalid_number', 'invalid message recipient'),
    ('twilio', '63003', 'permanent', 'undeliverable', 'the channel could not find the To address'),
    ('twilio', '63049', 'permanent', 'ecosystem_limit', 'Meta chose not to deliver this marketing message');

CREATE FUNCTION whatsapp_handler.worker_failed(p_msg_id bigint, p_code text, p_fallback text, p_error jsonb,
                                               p_retry_delay_seconds double precision)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_message jsonb;
    v_channel bigint;
    v_user    bigint;
    v_rule    record;
    v_outcome text;
    v_reason  text;
    v_error   jsonb;
    v_until   timestamptz;
BEGIN
    IF p_fallback IS NULL OR p_fallback NOT IN ('permanent', 'retry') THEN
        RAISE EXCEPTION 'the fallback outcome is permanent or retry, not %', coalesce(p_fallback, 'NULL') USING ERRCODE = 'WH013',
            HINT = 'Pass retry for a 408, 425, 429, 5xx or transport error, permanent for another 4xx.';
    END IF;
    IF char_length(p_code) > 64 OR p_retry_delay_seconds < 0 OR p_retry_delay_seconds > 86400 THEN
        RAISE EXCEPTION 'a provider code has at most 64 characters, a retry delay 0 to 86400 seconds' USING ERRCODE = 'WH013',
            HINT = 'Pass the provider''s error code as text (or NULL) and the backoff in seconds (NULL once the attempts are spent).';
    END IF;
    SELECT l.message INTO v_message FROM _lock_outbound(ARRAY[p_msg_id]) l;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_channel := (v_message ->> 'channel_id')::bigint;
    v_user := (v_message ->> 'user_id')::bigint;
    SELECT e.outcome, e.reason INTO v_rule
    FROM provider_errors e JOIN channels c ON c.provider = e.provider
    WHERE c.id = v_channel AND e.code = p_code;
    v_outcome := coalesce(v_rule.outcome, p_fallback);
    v_reason := coalesce(v_rule.reason, CASE p_fallback WHEN 'retry' THEN 'transient' ELSE 'provider_refused' END);
    -- A refusal that named no code (a timeout, a 5xx page, what the worker would not send) keeps
    -- its error as the worker saw it.
    v_error := coalesce(p_error, '{}'::jsonb)
               || CASE WHEN p_code IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('code', p_code, 'reason', v_reason) END;

    IF v_outcome = 'throttle_channel' OR v_outcome = 'throttle_pair' THEN
        -- Not the message's fault: no attempt spent, and nothing of this channel (or for this
        -- person) is claimed before the pause is over.
        v_until := CASE v_outcome WHEN 'throttle_channel' THEN _throttle_channel(v_channel) ELSE _throttle_pair(v_channel, v_user) END;
        PERFORM _release_outbound(p_msg_id, extract(epoch FROM v_until - clock_timestamp()));
        RETURN 'throttled';
    ELSIF v_outcome = 'retry' THEN
        IF p_retry_delay_seconds IS NULL THEN
            PERFORM worker_dead_letter(p_msg_id, 'provider_down', v_error);
            RETURN 'provider_down';
        END IF;
        PERFORM _retry_outbound(p_msg_id, p_retry_delay_seconds, v_error);
        RETURN 'retry';
    END IF;
    -- The provider's own signal that the person wants no more marketing from this business.
    IF v_reason = 'marketing_opt_out' AND EXISTS (SELECT FROM users WHERE id = v_user) THEN
        PERFORM _record_consent(v_user, v_channel, false, 'provider:' || p_code);
    END IF;
    PERFORM worker_dead_letter(p_msg_id, 'rejected', v_error);
    RETURN 'rejected';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_failed(bigint, text, text, jsonb, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_failed(bigint, text, text, jsonb, double precision) TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_failed(bigint, text, text, jsonb, double precision) IS
    'Settles a send the provider refused, by its error code p_code as provider_errors classifies it for the message''s channel (a code it does not list: p_fallback, the worker''s reading of the HTTP status): permanent dead-letters it as rejected and marks it failed (131050 also records the person''s opt-out on the channel, source provider:131050); retry puts it back after p_retry_delay_seconds, or dead-letters it as provider_down when that is NULL (attempts spent); throttle_channel and throttle_pair put it back untried and push the channel''s or the person''s bucket later (settings pacing.*.throttle_pause). The error kept (dead letter, header last_error, failed status) is p_error, with the code and the reason when the provider named a code. Returns rejected, retry, provider_down or throttled, or NULL when the message was no longer queued. Raises WH013 for a fallback other than permanent or retry, a code over 64 characters or a delay outside 0-86400; WH011/WH020/WH075 for a bad pacing setting.';

COMMIT;
