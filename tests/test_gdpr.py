"""GDPR export and erasure."""

from __future__ import annotations

import json

from tests.helpers import outbound_messages, outbox_events, raises_sqlstate

PHONE = "+447700900123"


def seed_history(db, channel_id) -> int:
    """A user with preferences, an OTP challenge, an inbound message from a raw
    webhook, an outbound message with a status, and an archived event."""
    uid = db.execute(
        "SELECT user_id FROM whatsapp_handler.register_user(%s, %s, 'Ana')", (PHONE, channel_id)
    ).fetchone()["user_id"]
    db.execute('SELECT whatsapp_handler.set_user_preferences(%s, \'{"language": "pt-BR"}\')', (uid,))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    wh = db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, channel_id, payload)"
        " VALUES ('meta', %s, %s) RETURNING id",
        (channel_id, json.dumps({"from": PHONE, "text": "hello, my secret"})),
    ).fetchone()["id"]
    for direction, pmid, body, status in (
        ("inbound", "wamid.IN1", "hello, my secret", "received"),
        ("outbound", "wamid.OUT1", "welcome", "sent"),
    ):
        mid = db.execute(
            """INSERT INTO whatsapp_handler.messages
                   (channel_id, user_id, direction, provider_message_id, message_type, body, status, webhook_event_id)
               VALUES (%s, %s, %s, %s, 'text', %s, %s, %s) RETURNING id, created_at""",
            (channel_id, uid, direction, pmid, body, status, wh if direction == "inbound" else None),
        ).fetchone()
        db.execute(
            "INSERT INTO whatsapp_handler.message_keys VALUES (%s, %s, %s, %s)",
            (channel_id, pmid, mid["id"], mid["created_at"]),
        )
    db.execute(
        """INSERT INTO whatsapp_handler.message_status_events
               (channel_id, provider_message_id, status, occurred_at, errors)
           VALUES (%s, 'wamid.OUT1', 'failed', now(),
                   '[{"code": 131026, "title": "undeliverable to +447700900123"}]')""",
        (channel_id,),
    )
    # A consumer already handled the first event: it sits in the archive.
    db.execute("SELECT pgmq.archive('outbox', (SELECT min(msg_id) FROM pgmq.q_outbox))")
    return uid


def test_export_holds_everything_but_secrets(db, channel_id):
    uid = seed_history(db, channel_id)
    doc = db.execute("SELECT whatsapp_handler.export_user(%s) AS d", (uid,)).fetchone()["d"]
    assert doc["format"] == "whatsapp-handler.user-export/1"
    assert doc["user"]["phone"] == PHONE and doc["user"]["display_name"] == "Ana"
    assert doc["preferences"]["language"] == "pt-BR"
    assert len(doc["conversations"]) == 1
    assert [m["body"] for m in doc["messages"]] == ["hello, my secret", "welcome"]
    assert [s["status"] for s in doc["message_statuses"]] == ["failed"]
    [challenge] = doc["otp_challenges"]
    assert "code_hash" not in challenge
    code = outbound_messages(db)[0]["code"]
    assert code not in json.dumps(doc)


def test_erase_removes_personal_data_and_keeps_anonymous_history(db, channel_id):
    uid = seed_history(db, channel_id)
    assert db.execute("SELECT whatsapp_handler.erase_user(%s) AS e", (uid,)).fetchone()["e"] is True

    u = db.execute("SELECT * FROM whatsapp_handler.users WHERE id = %s", (uid,)).fetchone()
    assert (u["phone"], u["display_name"]) == (None, None) and u["erased_at"] is not None
    msgs = db.execute(
        "SELECT direction, message_type, status, body, media FROM whatsapp_handler.messages ORDER BY id"
    ).fetchall()
    assert [(m["direction"], m["message_type"], m["status"]) for m in msgs] == [
        ("inbound", "text", "received"),
        ("outbound", "text", "sent"),
    ]
    assert all(m["body"] is None and m["media"] is None for m in msgs)
    for table in ("webhook_events", "otp_challenges", "user_preferences"):
        assert db.execute(f"SELECT count(*) AS n FROM whatsapp_handler.{table}").fetchone()["n"] == 0, table
    assert db.execute("SELECT errors FROM whatsapp_handler.message_status_events").fetchone()["errors"] is None
    assert outbound_messages(db) == []  # the pending OTP message is not sent to an erased user
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbox").fetchone()["n"] == 0

    # The phone number survives nowhere in the project's tables or queues, except in
    # events still waiting for consumers (documented), which user.erased follows.
    tables = db.execute(
        """SELECT c.oid::regclass::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('whatsapp_handler', 'pgmq') AND c.relkind = 'r' AND c.relname <> 'q_outbox'"""
    ).fetchall()
    for row in tables:
        n = db.execute(f"SELECT count(*) AS n FROM {row['t']} x WHERE x::text LIKE %s", (f"%{PHONE[1:]}%",)).fetchone()[
            "n"
        ]
        assert n == 0, row["t"]
    assert outbox_events(db)[-1]["type"] == "user.erased"


def test_erase_is_idempotent_and_erased_users_are_frozen(db, channel_id):
    uid = seed_history(db, channel_id)
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (uid,))
    assert db.execute("SELECT whatsapp_handler.erase_user(%s) AS e", (uid,)).fetchone()["e"] is False
    assert len(outbox_events(db, "user.erased")) == 1
    with raises_sqlstate("WH009"):
        db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    with raises_sqlstate("WH002"):
        db.execute("SELECT whatsapp_handler.touch_user_activity(%s)", (uid,))
    # The same phone may come back: it is a new person as far as we know.
    again = db.execute("SELECT * FROM whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id)).fetchone()
    assert again["created"] is True and again["user_id"] != uid
    doc = db.execute("SELECT whatsapp_handler.export_user(%s) AS d", (uid,)).fetchone()["d"]
    assert doc["user"]["phone"] is None and doc["preferences"] is None


def test_erase_removes_the_users_dead_letters_and_archives(db, channel_id):
    uid = seed_history(db, channel_id)
    other = db.execute(
        "SELECT user_id FROM whatsapp_handler.register_user('+447700900999', %s)", (channel_id,)
    ).fetchone()["user_id"]
    for user in (uid, other):
        group = json.dumps({"x-pgmq-group": f"user:{user}"})
        db.execute(
            'INSERT INTO pgmq.q_outbound_dlq (vt, message, headers) VALUES (now(), \'{"to": "+44"}\', %s)', (group,)
        )
        db.execute("INSERT INTO pgmq.q_outbox_dlq (vt, message, headers) VALUES (now(), '{}', %s)", (group,))
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (uid,))
    for queue in ("q_outbound_dlq", "q_outbox_dlq", "a_outbound", "a_outbox"):
        groups = [r["g"] for r in db.execute(f"SELECT headers ->> 'x-pgmq-group' AS g FROM pgmq.{queue}").fetchall()]
        assert f"user:{uid}" not in groups, queue
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound_dlq").fetchone()["n"] == 1  # the other user's stays
