-- Verify whatsapp_handler:delivery/provider_errors on pg
BEGIN;

SELECT provider, code, outcome, reason, description FROM whatsapp_handler.provider_errors WHERE false;
-- The codes the worker's tests and docs name are classified.
SELECT 1 / (count(*) = 9)::int FROM whatsapp_handler.provider_errors
WHERE (provider, code) IN (('meta', '131047'), ('meta', '131026'), ('meta', '131050'), ('meta', '131056'), ('meta', '130429'),
                           ('twilio', '63016'), ('twilio', '63018'), ('twilio', '21211'), ('twilio', '21614'));
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_failed(bigint, text, text, jsonb, double precision)',
                                         '{whatsapp_handler_worker}');

ROLLBACK;
