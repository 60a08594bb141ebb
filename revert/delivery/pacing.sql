-- Revert whatsapp_handler:delivery/pacing from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.worker_pacing();
DROP FUNCTION whatsapp_handler.worker_next_visible();
DROP FUNCTION whatsapp_handler._throttle_pair(bigint, bigint);
DROP FUNCTION whatsapp_handler._throttle_channel(bigint);
DROP FUNCTION whatsapp_handler._pacing();
DROP TABLE whatsapp_handler.pacing_pairs;
DROP TABLE whatsapp_handler.pacing_channels;
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key IN ('pacing.channel.per_second', 'pacing.channel.burst',
        'pacing.pair.interval', 'pacing.pair.burst', 'pacing.channel.throttle_pause', 'pacing.pair.throttle_pause') RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
