"""A message's status only moves forward (queued < sent < failed < delivered < read; issue 14: a
failure no longer overrides a delivery or a read, tests/test_status_details.py):
an equal or earlier status changes nothing and emits no second message.status_changed,
whether a provider's webhook reports it or the worker settles the message. Each test
repeats a status, so each fails if the comparison lets an equal status through."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events

USER = "+447700900123"
WA_ID = USER[1:]
TWILIO_PHONE = "+15550002222"


@pytest.fixture
def channels(db) -> dict[str, int]:
    def add(provider, ref, phone):
        return db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, 'test') AS id", (provider, ref, phone)
        ).fetchone()["id"]

    return {
        "meta": add("meta", p.META_PHONE_NUMBER_ID, "+15550001111"),
        "twilio": add("twilio", f"whatsapp:{TWILIO_PHONE}", TWILIO_PHONE),
    }


@pytest.fixture
def worker(connect_as):
    return connect_as("worker")


def ingest(db, provider: str, body: dict) -> dict:
    return db.execute(f"SELECT whatsapp_handler.ingest_{provider}(%s, 'cid') AS r", (Jsonb(body),)).fetchone()["r"]


def meta_status(db, wamid: str, status: str, at: int) -> None:
    ingest(db, "meta", p.meta_body(p.meta_value(statuses=[p.meta_status(wamid, status, WA_ID, 1_700_000_000 + at)])))


def status_of(db, message_id: int) -> str:
    return db.execute("SELECT status::text FROM whatsapp_handler.messages WHERE id = %s", (message_id,)).fetchone()[
        "status"
    ]


def changes(db) -> list[tuple[str, str]]:
    events = outbox_events(db, "message.status_changed")
    return [(e["payload"]["previous_status"], e["payload"]["status"]) for e in events]


def queued_welcome(db, worker) -> dict:
    """The user's first contact queues a welcome; the worker claims it."""
    ingest(db, "meta", p.meta_text(WA_ID, "wamid.in-1"))
    claimed = worker.execute("SELECT * FROM whatsapp_handler.worker_claim(1, 30)").fetchall()
    assert [c["message"]["reply_key"] for c in claimed] == ["welcome"]
    return claimed[0]


def sent(db, worker, wamid: str) -> dict:
    welcome = queued_welcome(db, worker)
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, %s)", (welcome["msg_id"], wamid))
    return welcome["message"]


def rejected(worker, msg_id: int) -> None:
    error = Jsonb({"status": 400, "body": {"error": {"code": 131026}}})
    worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'rejected', %s)", (msg_id, error))


def replay_and_claim(db, worker) -> dict:
    """An operator replays the rejected message's dead letter, behind the user's terms
    message; the worker sends the terms, then claims the replayed message."""
    [dead] = db.execute("SELECT msg_id FROM pgmq.q_outbound_dlq").fetchall()
    db.execute("SELECT whatsapp_handler.redrive_outbound(1, %s)", ([dead["msg_id"]],))
    [terms] = worker.execute("SELECT * FROM whatsapp_handler.worker_claim(1, 30)").fetchall()
    assert terms["message"]["reply_key"] == "terms"
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.terms')", (terms["msg_id"],))
    [again] = worker.execute("SELECT * FROM whatsapp_handler.worker_claim(1, 30)").fetchall()
    assert again["message"]["reply_key"] == "welcome"
    return again


def test_a_repeated_and_an_earlier_meta_status_change_nothing(db, channels, worker):
    message = sent(db, worker, "wamid.out-1")
    meta_status(db, "wamid.out-1", "delivered", 100)
    meta_status(db, "wamid.out-1", "delivered", 100)  # the provider's retry of the same report
    meta_status(db, "wamid.out-1", "sent", 50)  # late
    assert status_of(db, message["message_id"]) == "delivered"
    assert changes(db) == [("queued", "delivered")]
    reported = db.execute("SELECT status::text FROM whatsapp_handler.message_status_events ORDER BY id").fetchall()
    assert [r["status"] for r in reported] == ["delivered", "delivered", "sent"]  # each kept as reported


def test_a_twilio_failure_reported_twice_fails_the_message_once(db, channels):
    registered = db.execute("SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (USER, channels["twilio"]))
    uid = registered.fetchone()["user_id"]
    row = db.execute(
        """INSERT INTO whatsapp_handler.messages
               (channel_id, user_id, direction, provider_message_id, message_type, body, status)
           VALUES (%s, %s, 'outbound', 'SM0002', 'text', 'hi', 'queued') RETURNING id, created_at""",
        (channels["twilio"], uid),
    ).fetchone()
    db.execute(
        "INSERT INTO whatsapp_handler.message_keys VALUES (%s, 'SM0002', %s, %s)",
        (channels["twilio"], row["id"], row["created_at"]),
    )
    for status in ("undelivered", "undelivered"):
        ingest(db, "twilio", p.twilio_status("SM0002", status, TWILIO_PHONE, USER, ErrorCode="63016"))
    assert status_of(db, row["id"]) == "failed"
    assert changes(db) == [("queued", "failed")]
    # A delivery after it outranks the failure (another device had it): one more move, once.
    for _ in range(2):
        ingest(db, "twilio", p.twilio_status("SM0002", "delivered", TWILIO_PHONE, USER))
    assert status_of(db, row["id"]) == "delivered"
    assert changes(db) == [("queued", "failed"), ("failed", "delivered")]


def test_the_worker_catch_up_with_an_equal_or_earlier_status_changes_nothing(db, channels, worker):
    welcome = queued_welcome(db, worker)
    rejected(worker, welcome["msg_id"])
    assert changes(db) == [("queued", "failed")]
    again = replay_and_claim(db, worker)
    # The provider reports on the second attempt before the worker records its id: a
    # failure (equal to the message's status) and a "sent" (earlier).
    meta_status(db, "wamid.retry", "sent", 100)
    meta_status(db, "wamid.retry", "failed", 200)
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.retry')", (again["msg_id"],))
    assert status_of(db, welcome["message"]["message_id"]) == "failed"
    assert changes(db) == [("queued", "failed")]


def test_the_worker_catch_up_with_an_earlier_status_keeps_a_later_one(db, channels, worker):
    welcome = queued_welcome(db, worker)
    rejected(worker, welcome["msg_id"])
    again = replay_and_claim(db, worker)
    meta_status(db, "wamid.retry", "read", 100)
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.retry')", (again["msg_id"],))
    # failed < read: the retry was read, and the message says so.
    assert status_of(db, welcome["message"]["message_id"]) == "read"
    assert changes(db) == [("queued", "failed"), ("failed", "read")]
    # A failure reported now, on the webhook path (the key exists), changes nothing.
    meta_status(db, "wamid.retry", "failed", 200)
    assert status_of(db, welcome["message"]["message_id"]) == "read"
    assert changes(db) == [("queued", "failed"), ("failed", "read")]


def test_a_rejected_message_replayed_and_rejected_again_fails_once(db, channels, worker):
    welcome = queued_welcome(db, worker)
    rejected(worker, welcome["msg_id"])
    again = replay_and_claim(db, worker)
    assert again["message"]["message_id"] == welcome["message"]["message_id"]
    rejected(worker, again["msg_id"])
    assert status_of(db, welcome["message"]["message_id"]) == "failed"
    assert changes(db) == [("queued", "failed")]
