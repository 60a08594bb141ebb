-- Verify whatsapp_handler:templates/templates on pg
BEGIN;

SELECT channel_id, name, language, category, status, components, header_parameters, body_parameters, button_parameters,
       provider_template_id, status_reason, updated_at
FROM whatsapp_handler.message_templates WHERE FALSE;
SELECT 1 / (count(*) = 4)::int FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.message_templates'::regclass
  AND conname IN ('message_templates_name_shape', 'message_templates_language_shape', 'message_templates_category_known',
                  'message_templates_status_known');
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.message_templates', 'select'))::int;
SELECT 1 / (whatsapp_handler._placeholders('Hi {{1}}, order {{2}} ({{1}})') = 2)::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._placeholders(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.template_upsert(bigint, text, text, text, text, jsonb, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._template_for_send(bigint, jsonb)', '{}');

ROLLBACK;
