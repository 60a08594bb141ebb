-- Verify whatsapp_handler:fn_erase_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.erase_user(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._erase_user_from_brand(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._erase_raw_webhooks(text, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._scrub_pending_events(bigint, text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._webhook_phones(jsonb)', '{}');
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'pgmq' AND indexname IN ('a_outbound_group_idx', 'a_outbox_group_idx');
-- Every form a provider writes a number in is found, and nothing else.
SELECT 1 / (whatsapp_handler._webhook_phones(
    '{"a": "447700900123", "b": ["whatsapp:+447700900124", {"c": "447700900125@s.whatsapp.net"}],
      "d": 447700900126, "e": "call +447700900127", "f": "+447700900128"}')
    = ARRAY['447700900123', '447700900124', '447700900125', '447700900126', '447700900128'])::int;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'whatsapp_handler' AND tablename = 'webhook_events'
  AND indexname IN ('webhook_events_phones_idx', 'webhook_events_unparsed_idx');

ROLLBACK;
