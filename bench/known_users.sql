-- 100,000 users known on channel 1, terms accepted, conversation active: the steady
-- state, where a text message is stored and announced and needs no reply.
INSERT INTO whatsapp_handler.users (phone, display_name, terms_accepted_at, terms_version, last_active_at)
SELECT '+' || (447700000000 + g), 'User ' || g, now(), '2026-11', now() - interval '1 hour'
FROM generate_series(0, 99999) g;
INSERT INTO whatsapp_handler.user_preferences (user_id) SELECT id FROM whatsapp_handler.users;
INSERT INTO whatsapp_handler.conversations (user_id, channel_id, state) SELECT id, 1, 'active' FROM whatsapp_handler.users;
VACUUM ANALYZE whatsapp_handler.users, whatsapp_handler.conversations, whatsapp_handler.user_preferences;
-- The bench's numbers are British: the OTP destinations a DBA would list (a deploy leaves none).
UPDATE whatsapp_handler.settings SET value = '["44"]' WHERE key = 'otp.country_codes';
