-- Deploy whatsapp_handler:campaigns/recipient_status to pg
-- requires: campaigns/campaigns messages/messages messages/status_events messages/status_order delivery/provider_errors sending/message_view
-- A recipient's state follows its message: each move of the message's status (the
-- provider's status webhooks, the worker's sent and failed, _advance_status) moves the
-- recipient in the same transaction, so that a campaign's funnel is a count of its own rows.
-- A failure carries its reason: the one provider_errors gives the provider's code.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._failure_reason(p_message_id bigint, p_user_id bigint, p_channel_id bigint,
                                                 p_provider_message_id text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT coalesce(
        -- Refused by the provider at send time: the dead letter's error names the reason.
        (SELECT coalesce(d -> 'error' ->> 'reason', d ->> 'reason')
         FROM _message_delivery(p_message_id, p_user_id) d WHERE d ->> 'state' = 'dead_lettered'),
        -- Failed later: the code of the provider's failed status, as provider_errors reads it.
        (SELECT coalesce(e.reason, 'provider_code_' || (s.errors -> 0 ->> 'code'))
         FROM message_status_events s
         JOIN channels c ON c.id = s.channel_id
         LEFT JOIN provider_errors e ON e.provider = c.provider AND e.code = s.errors -> 0 ->> 'code'
         WHERE s.channel_id = p_channel_id AND s.provider_message_id = p_provider_message_id AND s.status = 'failed'
           AND s.errors -> 0 ->> 'code' ~ '^[0-9]{1,12}$'
         ORDER BY s.occurred_at DESC, s.id DESC LIMIT 1),
        'failed')
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._failure_reason(bigint, bigint, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._failure_reason(bigint, bigint, bigint, text) IS
    'Internal: why an outbound message failed, as a reason word: its dead letter''s (the provider''s code read by provider_errors, e.g. undeliverable, marketing_opt_out; or provider_down), else its latest failed status''s code as provider_errors reads it (provider_code_<n> for a code it does not list), else failed. Raises nothing.';

CREATE FUNCTION whatsapp_handler._campaign_recipient_status()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE campaign_recipients
    SET state = NEW.status::text, updated_at = now(),
        reason = CASE WHEN NEW.status = 'failed'
                      THEN _failure_reason(NEW.id, NEW.user_id, NEW.channel_id, NEW.provider_message_id) END
    WHERE message_id = NEW.id AND message_created_at = NEW.created_at;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_recipient_status() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_recipient_status() IS
    'Internal: trigger on messages: a campaign recipient takes its message''s new status (with _failure_reason when it failed). Raises nothing of its own.';

CREATE TRIGGER messages_campaign_recipient_status
AFTER UPDATE OF status ON whatsapp_handler.messages
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.direction = 'outbound')
EXECUTE FUNCTION whatsapp_handler._campaign_recipient_status();

COMMIT;
