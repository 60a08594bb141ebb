-- Deploy whatsapp_handler:users/export_user to pg
-- requires: users/users users/preferences conversation/conversations messages/messages messages/status_events otp/challenges
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.export_user(p_user_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    SELECT jsonb_build_object(
        'format', 'whatsapp-handler.user-export/1',
        'exported_at', now(),
        'user', to_jsonb(u),
        'preferences', (SELECT to_jsonb(p) - 'user_id' FROM user_preferences p WHERE p.user_id = u.id),
        'conversations', (SELECT coalesce(jsonb_agg(to_jsonb(c) - 'user_id' ORDER BY c.id), '[]')
                          FROM conversations c WHERE c.user_id = u.id),
        'otp_challenges', (SELECT coalesce(jsonb_agg(to_jsonb(o) - 'user_id' - 'code_hash' ORDER BY o.id), '[]')
                           FROM otp_challenges o WHERE o.user_id = u.id),
        'messages', (SELECT coalesce(jsonb_agg(to_jsonb(m) - 'user_id' ORDER BY m.created_at, m.id), '[]')
                     FROM messages m WHERE m.user_id = u.id),
        'message_statuses', (SELECT coalesce(jsonb_agg(jsonb_build_object('message_id', s.message_id, 'status', s.status,
                                                                          'occurred_at', s.occurred_at, 'errors', s.errors)
                                                       ORDER BY s.occurred_at, s.id), '[]')
                             FROM message_status_events s
                             JOIN message_keys k ON k.channel_id = s.channel_id AND k.provider_message_id = s.provider_message_id
                             JOIN messages m ON m.id = k.message_id AND m.created_at = k.message_created_at
                             WHERE m.user_id = u.id))
    INTO v_doc
    FROM users u WHERE u.id = p_user_id;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION 'unknown user %', p_user_id
            USING ERRCODE = 'WH002', HINT = 'Check the user id.';
    END IF;
    RETURN v_doc;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.export_user(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.export_user(bigint) IS
    'GDPR access: everything held about one user as one JSON document (format whatsapp-handler.user-export/1): the user, preferences, conversations, OTP challenges (without hashes), messages and their delivery statuses. Raw webhook bodies are not included: they repeat the messages. Raises WH002 unknown user.';

COMMIT;
