-- Verify whatsapp_handler:delivery/worker on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_channels()', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_claim(integer, integer, bigint[])', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_sent(bigint, text)', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_sent_batch(bigint[], text[])', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_retry(bigint, double precision, jsonb)', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_release(bigint, double precision)', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_dead_letter(bigint, text, jsonb)', '{whatsapp_handler_worker}');

ROLLBACK;
