"""The conversation state machine, driven by inbound Meta messages."""

from __future__ import annotations

import itertools

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbound_messages, outbox_events

USER = "+447700900123"
WA_ID = USER[1:]
_ids = itertools.count()


@pytest.fixture
def say(db):
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support')", (p.META_PHONE_NUMBER_ID,))

    def _say(text: str | None = None, button: tuple[str, str] | None = None) -> list[str]:
        """Send one message from the user; return the reply keys it caused."""
        before = db.execute("SELECT coalesce(max(msg_id), 0) AS m FROM pgmq.q_outbound").fetchone()["m"]
        wamid = f"wamid.C{next(_ids)}"
        body = p.meta_button_reply(WA_ID, wamid, *button) if button else p.meta_text(WA_ID, wamid, body=text)
        result = db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]
        assert result["outcome"] == "processed", result
        rows = db.execute("SELECT message FROM pgmq.q_outbound WHERE msg_id > %s ORDER BY msg_id", (before,))
        return [r["message"]["reply_key"] for r in rows.fetchall()]

    return _say


def state(db) -> str:
    return db.execute("SELECT state FROM whatsapp_handler.conversations").fetchone()["state"]


def user(db) -> dict:
    return db.execute("SELECT * FROM whatsapp_handler.users ORDER BY id DESC LIMIT 1").fetchone()


def notifications(db) -> bool:
    return db.execute("SELECT notifications_enabled FROM whatsapp_handler.user_preferences").fetchone()[
        "notifications_enabled"
    ]


def test_first_contact_welcomes_and_asks_for_terms(db, say):
    assert say("hi") == ["welcome", "terms"]
    assert state(db) == "awaiting_terms"
    [started] = outbox_events(db, "conversation.started")
    assert started["payload"]["channel_id"] is not None
    replies = outbound_messages(db)
    assert all(m["to"] == USER and m["kind"] == "text" for m in replies)
    assert "2026-11" in replies[1]["body"] and "https://example.com/terms" in replies[1]["body"]
    # Each reply is also an outbound message row, queued for the worker.
    rows = db.execute(
        "SELECT status::text, body FROM whatsapp_handler.messages WHERE direction = 'outbound'"
    ).fetchall()
    assert [r["status"] for r in rows] == ["queued", "queued"]


def test_terms_are_accepted_with_yes(db, say):
    say("hi")
    assert say("what is this?") == ["terms_reminder"]
    assert say(" yes ") == ["terms_accepted"]
    assert state(db) == "active"
    assert user(db)["terms_version"] == "2026-11"
    assert [e["type"] for e in outbox_events(db, "user.terms_accepted")] == ["user.terms_accepted"]
    assert say("free text for the business") == []  # active: the business answers, not the machine


def test_terms_are_accepted_with_a_button(db, say):
    say("hi")
    assert say(button=("accept_terms", "I accept")) == ["terms_accepted"]
    assert state(db) == "active"


def test_a_first_yes_accepts_nothing(db, say):
    assert say("YES") == ["welcome", "terms"]
    assert user(db)["terms_version"] is None


def test_the_current_terms_version_is_a_setting(db, say):
    say("hi")
    db.execute("UPDATE whatsapp_handler.settings SET value = '\"2027-01\"' WHERE key = 'terms.version'")
    say("yes")
    assert user(db)["terms_version"] == "2027-01"


def test_help_works_in_every_state(db, say):
    assert say("HELP") == ["welcome", "terms", "help"]
    assert state(db) == "awaiting_terms"
    say("yes")
    assert say("help") == ["help"]


def test_stop_and_start(db, say):
    say("hi")
    say("yes")
    assert say("STOP") == ["stopped"]
    assert (state(db), notifications(db)) == ("opted_out", False)
    assert say("anything") == []
    assert say("START") == ["started"]
    assert (state(db), notifications(db)) == ("active", True)
    changed = [e["payload"]["changed"] for e in outbox_events(db, "user.preferences_updated")]
    assert changed == [{"notifications_enabled": False}, {"notifications_enabled": True}]


def test_stop_before_terms_returns_to_terms(db, say):
    say("hi")
    say("stop")
    say("start")
    assert state(db) == "awaiting_terms"


def test_delete_needs_confirmation_and_can_be_cancelled(db, say):
    say("hi")
    say("yes")
    assert say("DELETE") == ["delete_confirm"]
    assert state(db) == "awaiting_delete_confirmation"
    assert say("no, keep it") == ["delete_cancelled"]
    assert state(db) == "active" and user(db)["erased_at"] is None


def test_delete_confirmed_erases_and_says_goodbye(db, say):
    say("hi")
    say("yes")
    say("delete")
    assert say("YES") == ["deleted"]
    u = user(db)
    assert u["erased_at"] is not None and u["phone"] is None
    assert state(db) == "closed"
    # Earlier queued replies went with the erasure; the goodbye still reaches the phone.
    [goodbye] = outbound_messages(db)
    assert (goodbye["reply_key"], goodbye["to"]) == ("deleted", USER)
    assert outbox_events(db)[-1]["type"] == "user.erased"


def test_after_erasure_the_phone_starts_afresh(db, say):
    say("hi")
    say("delete")
    say("yes")
    assert say("hello again") == ["welcome", "terms"]
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 2


def test_blocked_user_gets_nothing_but_is_recorded(db, say):
    say("hi")
    db.execute("SELECT whatsapp_handler.block_user((SELECT id FROM whatsapp_handler.users), 'abuse')")
    for text in ("yes", "HELP", "STOP", "DELETE"):
        assert say(text) == []
    assert state(db) == "awaiting_terms"
    n = db.execute("SELECT count(*) AS n FROM whatsapp_handler.messages WHERE direction = 'inbound'").fetchone()["n"]
    assert n == 5


def set_language(db, language: str) -> None:
    db.execute(
        "SELECT whatsapp_handler.set_user_preferences((SELECT id FROM whatsapp_handler.users), %s)",
        (Jsonb({"language": language}),),
    )


def test_replies_follow_the_users_language(db, say):
    say("hi")
    set_language(db, "pt-BR")
    say("o quê?")
    assert outbound_messages(db)[-1]["body"].startswith("Precisamos que aceite os termos")
    set_language(db, "fr-FR")
    say("quoi?")
    assert outbound_messages(db)[-1]["body"].startswith("We need you to accept our terms")  # en-GB fallback


def test_a_missing_reply_text_dead_letters_instead_of_losing_the_message(db, say):
    db.execute("DELETE FROM whatsapp_handler.reply_texts WHERE key = 'welcome'")
    body = p.meta_text(WA_ID, "wamid.NOTEXT")
    result = db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]
    assert result["outcome"] == "failed"
    assert db.execute("SELECT message->>'sqlstate' AS s FROM pgmq.q_inbound_dlq").fetchone()["s"] == "WH011"
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == 1


def test_the_documented_way_to_change_the_terms_and_a_reply_shows_in_the_next_replies(db, say):
    """docs/configuration.md, "What people read": its SQL, run as written."""
    from app.settings import PROJECT_DIR

    doc = (PROJECT_DIR / "docs" / "configuration.md").read_text()
    section = doc[doc.index("### What people read") :]
    sql = section[section.index("```sql") + len("```sql") : section.index("```", section.index("```sql") + 6)]
    db.execute(sql)
    assert say("hi") == ["welcome", "terms"]
    bodies = [m["body"] for m in outbound_messages(db)]
    assert bodies[0] == "Welcome to Acme! We send you updates about your orders."
    assert "https://acme.example/terms" in bodies[1] and "2026-11" in bodies[1]
