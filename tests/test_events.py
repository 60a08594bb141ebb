"""Every state change leaves exactly one event in the outbox, and none when its
transaction rolls back."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import outbox_events

PHONE = "+447700900123"

# (call, event type). {uid} is a registered, verified user; {phone} its phone.
CHANGES = [
    ("SELECT whatsapp_handler.register_user('+15551230000', {ch})", "user.registered"),
    ("SELECT whatsapp_handler.accept_terms({uid}, 'v9')", "user.terms_accepted"),
    ("SELECT whatsapp_handler.set_user_preferences({uid}, '{{\"auto_claim\": true}}')", "user.preferences_updated"),
    ("SELECT whatsapp_handler.block_user({uid}, 'spam')", "user.blocked"),
    ("SELECT whatsapp_handler.erase_user({uid})", "user.erased"),
    ("SELECT whatsapp_handler.request_otp('{phone}', {ch})", "otp.requested"),
]


@pytest.fixture
def uid(db, channel_id) -> int:
    return db.execute("SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id)).fetchone()[
        "user_id"
    ]


def _count(db) -> int:
    return db.execute("SELECT count(*) AS n FROM pgmq.q_outbox").fetchone()["n"]


@pytest.mark.parametrize(("call", "event_type"), CHANGES)
def test_one_event_per_change(db, channel_id, uid, call, event_type):
    before = _count(db)
    db.execute(call.format(uid=uid, ch=channel_id, phone=PHONE))
    events = outbox_events(db)[before:]
    assert [e["type"] for e in events] == [event_type]


@pytest.mark.parametrize(("call", "event_type"), CHANGES)
def test_no_event_when_the_transaction_rolls_back(db_url, db, channel_id, uid, call, event_type):
    before = _count(db)
    with psycopg.connect(db_url) as conn:
        conn.execute(call.format(uid=uid, ch=channel_id, phone=PHONE))
        conn.rollback()
    assert _count(db) == before


def test_unblock_and_verify_emit_their_events(db, channel_id, uid):
    db.execute("SELECT whatsapp_handler.block_user(%s, 'x')", (uid,))
    before = _count(db)
    db.execute("SELECT whatsapp_handler.unblock_user(%s)", (uid,))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    code = db.execute("SELECT message->>'code' AS c FROM pgmq.q_outbound").fetchone()["c"]
    db.execute("SELECT whatsapp_handler.verify_otp(%s, %s)", (PHONE, code))
    assert [e["type"] for e in outbox_events(db)[before:]] == ["user.unblocked", "otp.requested", "user.verified"]


def test_events_of_one_user_share_a_fifo_group(db, channel_id, uid):
    db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    db.execute("SELECT whatsapp_handler.block_user(%s, 'x')", (uid,))
    # pgmq's grouped read hands out a user's events together and in the order they happened.
    first = db.execute("SELECT message->>'type' AS t FROM pgmq.read_grouped('outbox', 30, 10)").fetchall()
    assert [r["t"] for r in first] == ["user.registered", "user.terms_accepted", "user.blocked"]
