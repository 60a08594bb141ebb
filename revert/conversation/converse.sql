-- Revert whatsapp_handler:conversation/converse from pg
-- Puts back the functions as v1.0.0 released them (deploy/conversation/converse@v1.0.0.sql)
-- and drops _erase_on_request, which came after.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._erase_on_request(bigint);

CREATE OR REPLACE FUNCTION whatsapp_handler._set_state(p_conversation_id bigint, p_state text, p_context jsonb DEFAULT '{}')
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

-- A person is one phone for every brand, but what a conversation decides for them (terms
-- accepted, erasure asked for) binds the whole person only while no other brand knows
-- them: a brand's credentials (a Meta app's secret, an Evolution apikey) must not act for
-- the users of another (docs/security.md).
CREATE OR REPLACE FUNCTION whatsapp_handler._known_to_other_brand(p_user_id bigint, p_brand text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (
        SELECT FROM whatsapp_handler.conversations c JOIN whatsapp_handler.channels ch ON ch.id = c.channel_id
        WHERE c.user_id = p_user_id AND c.state OPERATOR(pg_catalog.<>) 'closed'
          AND coalesce(ch.brand, 'channel:' OPERATOR(pg_catalog.||) ch.id) OPERATOR(pg_catalog.<>) p_brand)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._known_to_other_brand(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._known_to_other_brand(bigint, text) IS
    'Internal: whether a conversation that is not closed ties the user to a channel of another brand than p_brand. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler._brand_terms_accepted(p_user whatsapp_handler.users, p_brand text, p_terms text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(EXISTS (
        SELECT FROM whatsapp_handler.conversations c JOIN whatsapp_handler.channels ch ON ch.id = c.channel_id
        WHERE c.user_id = (p_user).id AND c.terms_version OPERATOR(pg_catalog.=) p_terms
          AND c.state OPERATOR(pg_catalog.<>) 'closed'
          AND coalesce(ch.brand, 'channel:' OPERATOR(pg_catalog.||) ch.id) OPERATOR(pg_catalog.=) p_brand)
    -- The person's own acceptance (accept_terms) is the brand's while no other brand knows them.
    OR ((p_user).terms_version OPERATOR(pg_catalog.=) p_terms
        AND NOT whatsapp_handler._known_to_other_brand((p_user).id, p_brand)), false)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._brand_terms_accepted(whatsapp_handler.users, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._brand_terms_accepted(whatsapp_handler.users, text, text) IS
    'Internal: whether the user accepted terms version p_terms for brand p_brand, in a conversation on one of its channels, or as a person (users.terms_version) while no other brand knows them. Raises nothing.';

-- What the state machine below does nothing for: free text (no keyword) in an active or
-- opted-out conversation, which the business answers (message.received). _record_inbound
-- does not call _converse for it, and ingest_batch's fast lane takes only such messages:
-- keep it in step with _converse. A SQL expression without a search_path, so that it is
-- inlined where it is called. p_word is the reply id, or else the text.
CREATE OR REPLACE FUNCTION whatsapp_handler._converse_ignores(p_state text, p_word text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_state OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'opted_out'])
           AND NOT coalesce(whatsapp_handler._is_keyword(p_word), false)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._converse_ignores(text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._converse_ignores(text, text) IS
    'Internal: whether _converse does nothing for a message (its reply id, or else its text) in a conversation of state p_state: free text in an active or opted-out conversation. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler._converse(p_conversation_id bigint, p_text text, p_reply_id text)
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
    v_brand    text;
BEGIN
    -- The caller holds the conversation row lock: one message of a conversation at a time.
    SELECT * INTO STRICT v_conv FROM conversations WHERE id = p_conversation_id;
    SELECT * INTO STRICT v_user FROM users WHERE id = v_conv.user_id;
    IF v_user.blocked_at IS NOT NULL OR v_user.erased_at IS NOT NULL THEN
        RETURN;
    END IF;
    -- Closed for someone not erased: their brand erased what it held, and they came back.
    IF v_conv.state = 'closed' THEN
        v_conv.state := 'new';
    END IF;
    v_yes := v_word IN ('YES', 'Y', 'SIM', 'SI', 'SÍ', 'ACCEPT', 'ACCEPT_TERMS', 'CONFIRM');

    IF v_conv.state = 'awaiting_delete_confirmation' THEN
        v_brand := _brand(v_conv.channel_id);
        IF v_yes AND _known_to_other_brand(v_user.id, v_brand) THEN
            -- Only what this brand holds goes; the person stays for the others.
            PERFORM _erase_user_from_brand(v_conv.id);
            PERFORM _queue_reply(v_conv.id, 'deleted');
        ELSIF v_yes THEN
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
        v_brand := _brand(v_conv.channel_id);
        IF NOT _brand_terms_accepted(v_user, v_brand, v_terms) THEN
            PERFORM _queue_reply(v_conv.id, 'terms');
            v_conv.state := 'awaiting_terms';
        ELSE
            v_conv.state := 'active';
        END IF;
        PERFORM _set_state(v_conv.id, v_conv.state);
        -- A first "YES" answers nothing yet: the user has not seen the terms.
        IF NOT _is_keyword(v_word) THEN
            RETURN;
        END IF;
    END IF;

    -- A word acts as a keyword only when _is_keyword() says so: the list has that one home.
    CASE (CASE WHEN _is_keyword(v_word) THEN v_word END)
    WHEN 'STOP' THEN
        PERFORM set_user_preferences(v_user.id, '{"notifications_enabled": false}');
        IF v_conv.state <> 'opted_out' THEN
            PERFORM _set_state(v_conv.id, 'opted_out', jsonb_build_object('previous_state', v_conv.state));
        END IF;
        PERFORM _queue_reply(v_conv.id, 'stopped');
    WHEN 'START' THEN
        PERFORM set_user_preferences(v_user.id, '{"notifications_enabled": true}');
        IF v_conv.state = 'opted_out' THEN
            v_brand := _brand(v_conv.channel_id);
            v_previous := coalesce(v_conv.context ->> 'previous_state',
                                   CASE WHEN _brand_terms_accepted(v_user, v_brand, v_terms) THEN 'active'
                                        ELSE 'awaiting_terms' END);
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
                v_brand := _brand(v_conv.channel_id);
                UPDATE conversations SET terms_version = v_terms, terms_accepted_at = now() WHERE id = v_conv.id;
                IF _known_to_other_brand(v_user.id, v_brand) THEN
                    -- Accepted for this brand only: the person's terms are not this channel's to set.
                    PERFORM _emit_event('user.brand_terms_accepted', v_user.id,
                                        jsonb_build_object('brand', v_brand, 'channel_id', v_conv.channel_id,
                                                           'terms_version', v_terms));
                ELSE
                    PERFORM accept_terms(v_user.id, v_terms);
                END IF;
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
    'Internal: moves a conversation on for one inbound message (its text, or the id of the button or list reply) and queues the replies. Keywords STOP, START, HELP, DELETE work in every state; YES (or SIM, ACCEPT, button id accept_terms) accepts the terms or confirms a deletion, for the person (accept_terms, erase_user) while no other brand knows them, otherwise for the channel''s brand only (user.brand_terms_accepted, _erase_user_from_brand). Blocked and erased users get nothing; a closed conversation of someone not erased starts again as new. Raises what the API functions it calls raise.';

COMMIT;
