-- Deploy whatsapp_handler:conversation/reply_texts to pg
-- requires: core/schema
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.reply_texts (
    key      text NOT NULL CONSTRAINT reply_texts_key_shape CHECK (key ~ '^[a-z_]{1,40}$'),
    language text NOT NULL CONSTRAINT reply_texts_language_tag CHECK (language ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
    body     text NOT NULL CONSTRAINT reply_texts_body_length CHECK (char_length(body) BETWEEN 1 AND 4096),
    PRIMARY KEY (key, language)
);
COMMENT ON TABLE whatsapp_handler.reply_texts IS 'What the conversation says, per language; {terms_url} and {terms_version} are filled in. en-GB is the fallback and must hold every key.';

INSERT INTO whatsapp_handler.reply_texts (key, language, body) VALUES
    ('welcome', 'en-GB', 'Welcome! This number sends you updates about your account.'),
    ('terms', 'en-GB', 'Please read our terms ({terms_version}) at {terms_url} and reply YES to accept them.'),
    ('terms_reminder', 'en-GB', 'We need you to accept our terms first: read them at {terms_url} and reply YES.'),
    ('terms_accepted', 'en-GB', 'Thank you, you are all set. Reply HELP at any time for the commands.'),
    ('help', 'en-GB', 'Commands: STOP to pause notifications, START to resume them, DELETE to erase your data, HELP for this message.'),
    ('stopped', 'en-GB', 'Notifications are paused. Reply START to resume them.'),
    ('started', 'en-GB', 'Notifications are on again.'),
    ('delete_confirm', 'en-GB', 'This erases everything we hold about you. Reply YES to confirm, or anything else to keep your data.'),
    ('delete_cancelled', 'en-GB', 'Nothing was deleted.'),
    ('deleted', 'en-GB', 'Your data has been erased. Goodbye.'),
    ('welcome', 'pt-BR', 'Bem-vindo! Este número envia atualizações sobre a sua conta.'),
    ('terms', 'pt-BR', 'Leia os nossos termos ({terms_version}) em {terms_url} e responda SIM para aceitá-los.'),
    ('terms_reminder', 'pt-BR', 'Precisamos que aceite os termos primeiro: leia-os em {terms_url} e responda SIM.'),
    ('terms_accepted', 'pt-BR', 'Obrigado, tudo pronto. Responda HELP a qualquer momento para ver os comandos.'),
    ('help', 'pt-BR', 'Comandos: STOP pausa as notificações, START retoma, DELETE apaga os seus dados, HELP mostra esta mensagem.'),
    ('stopped', 'pt-BR', 'Notificações pausadas. Responda START para retomá-las.'),
    ('started', 'pt-BR', 'As notificações voltaram.'),
    ('delete_confirm', 'pt-BR', 'Isto apaga tudo o que temos sobre si. Responda SIM para confirmar, ou outra coisa para manter os dados.'),
    ('delete_cancelled', 'pt-BR', 'Nada foi apagado.'),
    ('deleted', 'pt-BR', 'Os seus dados foram apagados. Adeus.');

CREATE FUNCTION whatsapp_handler._reply_text(p_key text, p_language text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_body text;
BEGIN
    SELECT body INTO v_body FROM reply_texts
    WHERE key = p_key AND language IN (p_language, 'en-GB')
    ORDER BY language = p_language DESC LIMIT 1;
    IF v_body IS NULL THEN
        RAISE EXCEPTION 'no reply text % (not even in en-GB)', p_key
            USING ERRCODE = 'WH011', HINT = 'Add it: INSERT INTO whatsapp_handler.reply_texts (key, language, body) ...';
    END IF;
    RETURN replace(replace(v_body, '{terms_url}', _setting('terms.url') #>> '{}'),
                   '{terms_version}', _setting('terms.version') #>> '{}');
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._reply_text(text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._reply_text(text, text) IS
    'Internal: the reply text for a key in a language, falling back to en-GB, with the terms placeholders filled in. Raises WH011 when the key has no text.';

COMMIT;
