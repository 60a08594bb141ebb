-- Deploy whatsapp_handler:conversation/conversations to pg
-- requires: users/users core/channels
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.conversations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
    channel_id     bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    state          text NOT NULL DEFAULT 'new'
                   CONSTRAINT conversations_state_known
                   CHECK (state IN ('new', 'awaiting_terms', 'active', 'awaiting_delete_confirmation', 'opted_out', 'closed')),
    context        jsonb NOT NULL DEFAULT '{}'
                   CONSTRAINT conversations_context_object CHECK (jsonb_typeof(context) = 'object'),
    terms_version  text CONSTRAINT conversations_terms_version_shape CHECK (terms_version ~ '^[A-Za-z0-9._-]{1,32}$'),
    terms_accepted_at timestamptz,
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_terms_version_with_accepted_at CHECK ((terms_version IS NULL) = (terms_accepted_at IS NULL)),
    CONSTRAINT conversations_user_channel_unique UNIQUE (user_id, channel_id)
);
COMMENT ON TABLE whatsapp_handler.conversations IS 'The state machine of one user on one channel (one row per pair).';
COMMENT ON COLUMN whatsapp_handler.conversations.state IS 'new → awaiting_terms → active; opted_out after STOP (until START); awaiting_delete_confirmation after DELETE; closed once the user is erased.';
COMMENT ON COLUMN whatsapp_handler.conversations.terms_version IS 'The terms version the user accepted in this conversation: it counts for every channel of the channel''s brand (users.terms_version is the person''s, set only while one brand knows them).';
COMMENT ON COLUMN whatsapp_handler.conversations.context IS 'State-specific data (e.g. what a confirmation refers to). Never personal data beyond ids.';

-- Lookups by channel (webhooks arrive per channel); (user_id, channel_id) is covered by the unique constraint.
CREATE INDEX conversations_channel_id_idx ON whatsapp_handler.conversations (channel_id);

COMMIT;
