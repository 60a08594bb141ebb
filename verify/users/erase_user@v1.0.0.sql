-- Verify whatsapp_handler:users/erase_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.erase_user(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._erase_user_from_brand(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._erase_raw_webhooks(text, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._scrub_pending_events(bigint, text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._webhook_strings(whatsapp_handler.provider, text, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._phone_forms(text)', '{}');
-- Every form a provider writes a number in is found.
SELECT 1 / (whatsapp_handler._webhook_strings('evolution', 'stored',
    '{"a": "447700900123", "b": ["whatsapp:+447700900124", {"c": "447700900125@s.whatsapp.net"}]}')
    ?& ARRAY['447700900123', 'whatsapp:+447700900124', '447700900125@s.whatsapp.net'])::int;
SELECT 1 / (whatsapp_handler._webhook_strings('meta', 'processed',
    '{"entry": [{"changes": [{"value": {"contacts": [{"wa_id": "447700900123"}],
      "statuses": [{"recipient_id": "447700900124"}]}}]}]}') ?& ARRAY['447700900123', '447700900124'])::int;
SELECT 1 / (whatsapp_handler._webhook_strings('twilio', 'processed', '{"From": "whatsapp:+447700900123"}')
    ?| whatsapp_handler._phone_forms('+447700900123'))::int;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'whatsapp_handler' AND tablename = 'webhook_events'
  AND indexname IN ('webhook_events_phones_idx', 'webhook_events_unparsed_idx');

ROLLBACK;
