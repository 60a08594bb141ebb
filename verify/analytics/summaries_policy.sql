-- Verify whatsapp_handler:analytics/summaries_policy on pg
BEGIN;

DO $$
DECLARE
    t text;
BEGIN
    -- analytics_registrations_daily is analytics_onboarded_daily once analytics/onboarded renamed it.
    FOREACH t IN ARRAY ARRAY['analytics_users', 'analytics_funnel_daily',
                             CASE WHEN to_regclass('whatsapp_handler.analytics_onboarded_daily') IS NULL
                                  THEN 'analytics_registrations_daily' ELSE 'analytics_onboarded_daily' END, 'analytics_otp_daily', 'analytics_messages_daily', 'analytics_delivery_daily', 'analytics_active_users'] LOOP
        IF NOT EXISTS (SELECT FROM pg_class WHERE oid = ('whatsapp_handler.' || t)::regclass
                       AND relrowsecurity AND relforcerowsecurity) THEN
            RAISE EXCEPTION 'whatsapp_handler.%: row-level security is not enabled and forced', t;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'whatsapp_handler' AND tablename = t
                       AND policyname = t || '_channels' AND qual LIKE '%_visible_channels()%') THEN
            RAISE EXCEPTION 'whatsapp_handler.%: no channel policy over _visible_channels()', t;
        END IF;
    END LOOP;
END
$$;

ROLLBACK;
