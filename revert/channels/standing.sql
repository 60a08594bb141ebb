-- Revert whatsapp_handler:channels/standing from pg
-- What providers told of their channels goes with the table: each provider tells it again at
-- its next change (an Evolution instance's next connection update, Meta's next quality or
-- account update), as the channel_quality table of campaigns' first version did.
BEGIN;

DROP FUNCTION whatsapp_handler.worker_channel_standing();
DROP FUNCTION whatsapp_handler._meta_account_update(text, jsonb, timestamptz);
DROP FUNCTION whatsapp_handler._meta_quality_update(text, jsonb, timestamptz);
DROP FUNCTION whatsapp_handler._meta_entry_time(text);
DROP FUNCTION whatsapp_handler._channel_standing_lock(bigint);
DROP FUNCTION whatsapp_handler._meta_number(text);
DROP FUNCTION whatsapp_handler._quality_flagged(text);
DROP FUNCTION whatsapp_handler._channel_connection_update(bigint, text, integer, timestamptz);
DROP FUNCTION whatsapp_handler._channel_connected(text, boolean);
DROP TABLE whatsapp_handler.channel_standing;

COMMIT;
