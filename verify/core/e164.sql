-- Verify whatsapp_handler:core/e164 on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._is_e164(text)', '{}');
SELECT 1 / (whatsapp_handler._is_e164('+447700900123') AND NOT whatsapp_handler._is_e164('+0447700900123')
            AND NOT whatsapp_handler._is_e164('447700900123'))::int;
SELECT '+447700900123'::whatsapp_handler.e164;
SELECT 1 / (count(*) = 1)::int FROM pg_catalog.pg_constraint
WHERE contypid = 'whatsapp_handler.e164'::regtype AND conname = 'e164_shape';

ROLLBACK;
