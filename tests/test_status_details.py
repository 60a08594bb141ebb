"""Statuses keep what providers tell (issue 14): a failed status's errors (code, title, message,
error_data.details) and a sent or delivered status's pricing are stored and in message.status_changed;
"failed" no longer overrides "delivered" or "read" (the order queued < sent < failed < delivered < read,
messages/status_order), in both orders of arrival; a failure with 131050 is the person's opt-out.
Every webhook is posted as the relay posts it: one ingest_meta call with the body Meta sends."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events, raises_sqlstate

USER = "+447700900123"
WA_ID = USER[1:]
UNDELIVERABLE = p.meta_status_error(131026, "Message undeliverable", "Message could not be delivered to the device")
STOPPED = p.meta_status_error(131050, "Unable to deliver the message", "The user has stopped marketing messages")


@pytest.fixture
def channel(db) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'test') AS id", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]


def sent_message(db: psycopg.Connection, channel_id: int, wamid: str) -> tuple[int, int]:
    """An outbound message the worker has handed to Meta (its key recorded); (message id, user id)."""
    uid = db.execute("SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (USER, channel_id)).fetchone()[
        "user_id"
    ]
    row = db.execute(
        """INSERT INTO whatsapp_handler.messages
               (channel_id, user_id, direction, provider_message_id, message_type, body, status)
           VALUES (%s, %s, 'outbound', %s, 'template', 'hi', 'queued') RETURNING id, created_at""",
        (channel_id, uid, wamid),
    ).fetchone()
    db.execute(
        "INSERT INTO whatsapp_handler.message_keys VALUES (%s, %s, %s, %s)",
        (channel_id, wamid, row["id"], row["created_at"]),
    )
    return row["id"], uid


def post(db: psycopg.Connection, *statuses: dict) -> dict:
    body = p.meta_body(p.meta_value(statuses=list(statuses)))
    return db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'cid-status') AS r", (Jsonb(body),)).fetchone()["r"]


def status_of(db: psycopg.Connection, message_id: int) -> str:
    return db.execute("SELECT status::text FROM whatsapp_handler.messages WHERE id = %s", (message_id,)).fetchone()[
        "status"
    ]


def moves(db: psycopg.Connection) -> list[tuple[str, str]]:
    return [
        (e["payload"]["previous_status"], e["payload"]["status"]) for e in outbox_events(db, "message.status_changed")
    ]


# --- the order: a failure never overrides a delivery or a read --------------------------------------------------


@pytest.mark.parametrize("reached", ["delivered", "read"])
def test_a_failure_after_a_delivery_or_read_changes_nothing(db, channel, reached):
    mid, _ = sent_message(db, channel, "wamid.D1")
    post(db, p.meta_status("wamid.D1", "sent", WA_ID, 1_700_000_000))
    post(db, p.meta_status("wamid.D1", reached, WA_ID, 1_700_000_010))
    result = post(db, p.meta_status("wamid.D1", "failed", WA_ID, 1_700_000_020, errors=[UNDELIVERABLE]))
    assert result["statuses"] == 1  # counted and kept as reported
    assert status_of(db, mid) == reached
    assert moves(db) == [("queued", "sent"), ("sent", reached)]  # the failure announced nothing
    kept = db.execute(
        "SELECT status::text, errors FROM whatsapp_handler.message_status_events WHERE message_id = %s ORDER BY id",
        (mid,),
    ).fetchall()
    assert [r["status"] for r in kept] == ["sent", reached, "failed"]
    assert kept[-1]["errors"] == [UNDELIVERABLE]  # details and all, for the analytics' failures


def test_a_delivery_after_a_failure_moves_the_message_on(db, channel):
    """The other order of a multi-device phone: one device failed first, another got it."""
    mid, _ = sent_message(db, channel, "wamid.D2")
    post(db, p.meta_status("wamid.D2", "sent", WA_ID, 1_700_000_000))
    post(db, p.meta_status("wamid.D2", "failed", WA_ID, 1_700_000_010, errors=[UNDELIVERABLE]))
    assert status_of(db, mid) == "failed"
    post(db, p.meta_priced_status("wamid.D2", "delivered", WA_ID, "utility", at=1_700_000_020))
    assert status_of(db, mid) == "delivered"
    post(db, p.meta_status("wamid.D2", "read", WA_ID, 1_700_000_030))
    post(db, p.meta_status("wamid.D2", "sent", WA_ID, 1_700_000_040))  # late: changes nothing
    assert status_of(db, mid) == "read"
    assert moves(db) == [("queued", "sent"), ("sent", "failed"), ("failed", "delivered"), ("delivered", "read")]


def test_a_failure_still_moves_a_queued_or_sent_message(db, channel):
    first, _ = sent_message(db, channel, "wamid.F1")
    post(db, p.meta_status("wamid.F1", "failed", WA_ID, errors=[UNDELIVERABLE]))
    assert status_of(db, first) == "failed"
    post(db, p.meta_status("wamid.F1", "sent", WA_ID))  # a late "sent" does not undo the failure
    assert status_of(db, first) == "failed"
    assert moves(db) == [("queued", "failed")]


# --- what the provider told, stored and in the events --------------------------------------------------------------


def test_a_failed_status_keeps_its_errors_with_their_details_in_the_event(db, channel):
    sent_message(db, channel, "wamid.E1")
    post(db, p.meta_status("wamid.E1", "failed", WA_ID, errors=[UNDELIVERABLE]))
    [event] = outbox_events(db, "message.status_changed")
    assert event["payload"]["errors"] == [UNDELIVERABLE]
    assert event["payload"]["errors"][0]["error_data"]["details"] == "Message could not be delivered to the device"
    assert event["payload"]["pricing"] is None


def test_pricing_of_sent_and_delivered_is_stored_and_in_the_events(db, channel):
    mid, _ = sent_message(db, channel, "wamid.P1")
    post(db, p.meta_priced_status("wamid.P1", "sent", WA_ID, "marketing", at=1_700_000_000))
    post(db, p.meta_priced_status("wamid.P1", "delivered", WA_ID, "marketing", at=1_700_000_005))
    kept = db.execute(
        "SELECT status::text, pricing FROM whatsapp_handler.message_status_events WHERE message_id = %s ORDER BY id",
        (mid,),
    ).fetchall()
    for row in kept:
        pricing = row["pricing"]
        assert (pricing["billable"], pricing["pricing_model"], pricing["category"]) == (True, "PMP", "marketing")
        assert pricing["conversation"]["id"] == "conv-wamid.P1"  # Meta's conversation object, kept with it
    events = outbox_events(db, "message.status_changed")
    assert [e["payload"]["status"] for e in events] == ["sent", "delivered"]
    assert [e["payload"]["pricing"]["category"] for e in events] == ["marketing", "marketing"]
    assert events[1]["payload"]["pricing"]["billable"] is True


def test_a_status_without_pricing_stores_none(db, channel):
    mid, _ = sent_message(db, channel, "wamid.P2")
    post(db, p.meta_status("wamid.P2", "read", WA_ID))
    row = db.execute(
        "SELECT pricing FROM whatsapp_handler.message_status_events WHERE message_id = %s", (mid,)
    ).fetchone()
    assert row["pricing"] is None


def test_a_status_for_a_message_not_yet_known_keeps_its_pricing_for_later(db, channel):
    post(db, p.meta_priced_status("wamid.LATER", "delivered", WA_ID, "utility"))
    row = db.execute("SELECT message_id, pricing FROM whatsapp_handler.message_status_events").fetchone()
    assert row["message_id"] is None and row["pricing"]["category"] == "utility"


# --- 131050: the person stopped marketing messages ------------------------------------------------------------------


def test_a_failure_with_131050_records_the_opt_out(db, channel):
    _, uid = sent_message(db, channel, "wamid.S1")
    db.execute("SELECT whatsapp_handler._record_consent(%s, %s, true, 'api:signup')", (uid, channel))
    post(db, p.meta_status("wamid.S1", "failed", WA_ID, errors=[STOPPED]))
    consent = db.execute(
        "SELECT status, source FROM whatsapp_handler.consents WHERE user_id = %s AND channel_id = %s", (uid, channel)
    ).fetchone()
    assert consent == {"status": "opted_out", "source": "provider:131050"}
    changes = [e["payload"] for e in outbox_events(db, "consent.changed")]
    assert [(c["previous_status"], c["status"], c["source"]) for c in changes][-1] == (
        "opted_in", "opted_out", "provider:131050"
    )  # fmt: skip
    # The next marketing template (or utility one) to them on this channel is refused before it is queued.
    with raises_sqlstate("WH068"):
        db.execute("SELECT whatsapp_handler._check_consent(%s, %s, 'marketing')", (uid, channel))
    # A second report of it says nothing twice.
    post(db, p.meta_status("wamid.S1", "failed", WA_ID, errors=[STOPPED]))
    assert len(outbox_events(db, "consent.changed")) == len(changes)


def test_other_failures_record_no_consent(db, channel):
    _, uid = sent_message(db, channel, "wamid.S2")
    post(db, p.meta_status("wamid.S2", "failed", WA_ID, errors=[UNDELIVERABLE]))
    assert (
        db.execute("SELECT count(*) AS n FROM whatsapp_handler.consents WHERE user_id = %s", (uid,)).fetchone()["n"]
        == 0
    )


def test_the_workers_catch_up_takes_the_status_that_outranks_the_others(db, channel, connect_as):
    """Statuses that came before the worker recorded the provider's id (a fast provider): the
    worker's catch-up moves the message by the same order, so a delivery reported before a
    failure still wins (the enum's last, failed, would not)."""
    worker = connect_as("worker")
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, "wamid.in-1")),))
    [welcome] = worker.execute("SELECT * FROM whatsapp_handler.worker_claim(1, 30)").fetchall()
    post(db, p.meta_priced_status("wamid.W1", "delivered", WA_ID, "service", billable=False, at=1_700_000_010))
    post(db, p.meta_status("wamid.W1", "failed", WA_ID, 1_700_000_020, errors=[UNDELIVERABLE]))
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.W1')", (welcome["msg_id"],))
    assert status_of(db, welcome["message"]["message_id"]) == "delivered"
    assert moves(db) == [("queued", "delivered")]
