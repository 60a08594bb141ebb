-- Demo data for a local try-out: one channel per provider and a registered user.
-- psql "$URL" -f sql/demo_data.sql   (as a superuser or the owner role)
BEGIN;

SELECT whatsapp_handler.add_channel('meta', '100000000000001', '+15550100001', 'Demo (Meta)');
SELECT whatsapp_handler.add_channel('twilio', 'whatsapp:+15550100002', '+15550100002', 'Demo (Twilio)');
SELECT whatsapp_handler.add_channel('evolution', 'demo-instance', '+15550100003', 'Demo (Evolution)');

SELECT * FROM whatsapp_handler.register_user(
    '+447700900001',
    (SELECT id FROM whatsapp_handler.channels WHERE provider = 'meta' AND provider_ref = '100000000000001'),
    'Demo User');

COMMIT;
