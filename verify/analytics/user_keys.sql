-- Verify whatsapp_handler:analytics/user_keys on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._user_key(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._country_code(text)', '{}');
SELECT 1 / (count(*) = 1)::int FROM whatsapp_handler.analytics_keys WHERE octet_length(key) >= 32;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['public', 'whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_analyst',
                             'whatsapp_handler_consumer'] LOOP
        IF has_table_privilege(r, 'whatsapp_handler.analytics_keys', 'SELECT') THEN
            RAISE EXCEPTION '% may read whatsapp_handler.analytics_keys', r;
        END IF;
    END LOOP;
    IF whatsapp_handler._country_code('+447700900123') IS DISTINCT FROM '+44'
       OR whatsapp_handler._country_code('+15550001111') IS DISTINCT FROM '+1'
       OR whatsapp_handler._country_code('+351912345678') IS DISTINCT FROM '+351' THEN
        RAISE EXCEPTION '_country_code gives wrong calling codes';
    END IF;
END
$$;

ROLLBACK;
