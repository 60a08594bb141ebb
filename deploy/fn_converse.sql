-- Deploy whatsapp_handler:fn_converse to pg
-- requires: fn_record_message fn_accept_terms fn_set_user_preferences fn_erase_user table_settings table_conversations
-- The conversation state machine. States: new → awaiting_terms → active; STOP
-- (opted_out) and START, HELP, DELETE (awaiting_delete_confirmation → closed) work
-- in every state. A blocked user gets nothing.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._set_state(p_conversation_id bigint, p_state text, p_context jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE conversations SET state = p_state, context = p_context, state_changed_at = now(), updated_at = now()
    WHERE id = p_conversation_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._set_state(bigint, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._set_state(bigint, text, jsonb) IS 'Internal: moves a conversation to a state with its context. Raises 23514 for an unknown state.';

CREATE FUNCTION whatsapp_handler._converse(p_conversation_id bigint, p_text text, p_reply_id text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_conv     conversations;
    v_user     users;
    v_word     text := upper(trim(coalesce(p_reply_id, p_text, '')));
    v_yes      boolean;
    v_terms    text := _setting('terms.version') #>> '{}';
    v_previous text;
BEGIN
    -- The caller holds the conversation row lock: one message of a conversation at a time.
    SELECT * INTO STRICT v_conv FROM conversations WHERE id = p_conversation_id;
    SELECT * INTO STRICT v_user FROM users WHERE id = v_conv.user_id;
    IF v_user.blocked_at IS NOT NULL OR v_conv.state = 'closed' THEN
        RETURN;
    END IF;
    v_yes := v_word IN ('YES', 'Y', 'SIM', 'SI', 'SÍ', 'ACCEPT', 'ACCEPT_TERMS', 'CONFIRM');

    IF v_conv.state = 'awaiting_delete_confirmation' THEN
        IF v_yes THEN
            PERFORM erase_user(v_user.id);
            PERFORM _set_state(v_conv.id, 'closed');
            -- Erasure removed the phone and every queued message: address this last one directly.
            PERFORM _queue_reply(v_conv.id, 'deleted', v_user.phone);
        ELSE
            PERFORM _set_state(v_conv.id, coalesce(v_conv.context ->> 'previous_state', 'active'));
            PERFORM _queue_reply(v_conv.id, 'delete_cancelled');
        END IF;
        RETURN;
    END IF;

    IF v_conv.state = 'new' THEN
        PERFORM _emit_event('conversation.started', v_user.id,
                            jsonb_build_object('conversation_id', v_conv.id, 'channel_id', v_conv.channel_id));
        PERFORM _queue_reply(v_conv.id, 'welcome');
        IF v_user.terms_version IS DISTINCT FROM v_terms THEN
            PERFORM _queue_reply(v_conv.id, 'terms');
            v_conv.state := 'awaiting_terms';
        ELSE
            v_conv.state := 'active';
        END IF;
        PERFORM _set_state(v_conv.id, v_conv.state);
        -- A first "YES" answers nothing yet: the user has not seen the terms.
        IF v_word NOT IN ('STOP', 'START', 'HELP', 'DELETE') THEN
            RETURN;
        END IF;
    END IF;

    CASE v_word
    WHEN 'STOP' THEN
        PERFORM set_user_preferences(v_user.id, '{"notifications_enabled": false}');
        IF v_conv.state <> 'opted_out' THEN
            PERFORM _set_state(v_conv.id, 'opted_out', jsonb_build_object('previous_state', v_conv.state));
        END IF;
        PERFORM _queue_reply(v_conv.id, 'stopped');
    WHEN 'START' THEN
        PERFORM set_user_preferences(v_user.id, '{"notifications_enabled": true}');
        IF v_conv.state = 'opted_out' THEN
            v_previous := coalesce(v_conv.context ->> 'previous_state',
                                   CASE WHEN v_user.terms_version = v_terms THEN 'active' ELSE 'awaiting_terms' END);
            PERFORM _set_state(v_conv.id, v_previous);
        END IF;
        PERFORM _queue_reply(v_conv.id, 'started');
    WHEN 'HELP' THEN
        PERFORM _queue_reply(v_conv.id, 'help');
    WHEN 'DELETE' THEN
        PERFORM _set_state(v_conv.id, 'awaiting_delete_confirmation', jsonb_build_object('previous_state', v_conv.state));
        PERFORM _queue_reply(v_conv.id, 'delete_confirm');
    ELSE
        IF v_conv.state = 'awaiting_terms' THEN
            IF v_yes THEN
                PERFORM accept_terms(v_user.id, v_terms);
                PERFORM _set_state(v_conv.id, 'active');
                PERFORM _queue_reply(v_conv.id, 'terms_accepted');
            ELSE
                PERFORM _queue_reply(v_conv.id, 'terms_reminder');
            END IF;
        END IF;
        -- active and opted_out: free text is for the business (message.received), no reply.
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._converse(bigint, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._converse(bigint, text, text) IS
    'Internal: moves a conversation on for one inbound message (its text, or the id of the button or list reply) and queues the replies. Keywords STOP, START, HELP, DELETE work in every state; YES (or SIM, ACCEPT, button id accept_terms) accepts the terms or confirms a deletion. Blocked users and closed conversations get nothing. Raises what the API functions it calls raise.';

COMMIT;
