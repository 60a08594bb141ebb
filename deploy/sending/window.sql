-- Deploy whatsapp_handler:sending/window to pg
-- requires: messages/messages core/channels jobs/settings
-- WhatsApp's customer service window: a person's message opens it for 24 hours on the
-- channel it reached, and only then may the business write freely (text, media,
-- interactive); outside it, only approved templates. This change is the rule's one home.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('sending.window', '"24 hours"',
     'How long a person''s message lets the business send free-form messages on that channel (WhatsApp: 24 hours; at least 1 minute). Shorten it to leave a margin for clocks.');

-- A person's messages of the last day are few: the (user_id, created_at) index finds them.
-- WhatsApp Web instances (Evolution) have no window: the rule is the Cloud API's and
-- Twilio's, which refuse such a send themselves (131047, 63016).
CREATE FUNCTION whatsapp_handler._window_open(p_user_id bigint, p_channel_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF (SELECT provider FROM channels WHERE id = p_channel_id) = 'evolution' THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT FROM messages
                   WHERE user_id = p_user_id AND channel_id = p_channel_id AND direction = 'inbound'
                     AND created_at > now() - _setting_interval('sending.window', interval '1 minute'));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._window_open(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._window_open(bigint, bigint) IS
    'Internal: whether the user''s customer service window is open on the channel: a message from them arrived there within setting sending.window (always true on an Evolution channel). Raises WH011/WH020 for a missing or malformed setting.';

CREATE FUNCTION whatsapp_handler._check_window(p_user_id bigint, p_channel_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF NOT _window_open(p_user_id, p_channel_id) THEN
        RAISE EXCEPTION 'outside the recipient''s 24-hour window on this channel' USING ERRCODE = 'WH064',
            HINT = 'Only an approved template may start a conversation; free-form messages answer a message the person sent within setting sending.window.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_window(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_window(bigint, bigint) IS
    'Internal: raises WH064 unless the user''s window is open on the channel (_window_open).';

COMMIT;
