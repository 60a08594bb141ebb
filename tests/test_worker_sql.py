"""The worker's SQL interface, called as the worker role: claim (one message per user,
in order), sent, retry, release, dead-letter; OTP codes never outlive delivery."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events, raises_sqlstate

WA_IDS = ["447700900201", "447700900202"]


@pytest.fixture
def worker(connect_as):
    return connect_as("worker")


@pytest.fixture
def meta_channel(db) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'test') AS id", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]


def first_contact(db, wa_id: str) -> None:
    """A welcome and the terms are queued for the user, in that order."""
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text(wa_id, f"wamid.in-{wa_id}")),))


def claim(worker, qty=10, vt=30, skip=()) -> list[dict]:
    return worker.execute(
        "SELECT * FROM whatsapp_handler.worker_claim(%s, %s, %s) ORDER BY msg_id", (qty, vt, list(skip))
    ).fetchall()


def queued(db) -> list[dict]:
    return db.execute("SELECT msg_id, vt, read_ct, message, headers FROM pgmq.q_outbound ORDER BY msg_id").fetchall()


def dead_letters(db) -> list[dict]:
    return [r["message"] for r in db.execute("SELECT message FROM pgmq.q_outbound_dlq ORDER BY msg_id").fetchall()]


def outbound_row(db, message_id: int) -> dict:
    return db.execute(
        "SELECT status, provider_message_id FROM whatsapp_handler.messages WHERE id = %s", (message_id,)
    ).fetchone()


def test_claim_takes_one_message_per_user_in_order(db, worker, meta_channel):
    for wa_id in WA_IDS:
        first_contact(db, wa_id)
    claimed = claim(worker)
    assert [c["message"]["reply_key"] for c in claimed] == ["welcome", "welcome"]
    assert [c["attempts"] for c in claimed] == [1, 1] and not any(c["in_doubt"] for c in claimed)
    # The terms wait behind each user's welcome while it is in flight.
    assert claim(worker) == []
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.out-1')", (claimed[0]["msg_id"],))
    [terms] = claim(worker)
    assert terms["message"]["reply_key"] == "terms" and terms["message"]["user_id"] == claimed[0]["message"]["user_id"]


def test_sent_records_the_provider_id_and_archives(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1)
    sent = worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.out-1') AS ok", (welcome["msg_id"],))
    assert sent.fetchone()["ok"]
    row = outbound_row(db, welcome["message"]["message_id"])
    assert row == {"status": "queued", "provider_message_id": "wamid.out-1"}
    archived = db.execute("SELECT msg_id, headers FROM pgmq.a_outbound").fetchall()
    assert [a["msg_id"] for a in archived] == [welcome["msg_id"]] and "in_flight" not in archived[0]["headers"]
    # A second settle (another worker's stale outcome) changes nothing.
    assert not worker.execute(
        "SELECT whatsapp_handler.worker_sent(%s, 'wamid.other') AS ok", (welcome["msg_id"],)
    ).fetchone()["ok"]
    # The provider's statuses now find the message.
    db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, 'c')",
        (Jsonb(p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.out-1", "delivered", WA_IDS[0])]))),),
    )
    assert outbound_row(db, welcome["message"]["message_id"])["status"] == "delivered"


def test_a_status_that_came_before_the_id_joins_it(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1)
    # The provider was faster than the worker's bookkeeping: "read" arrives first.
    db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, 'c')",
        (Jsonb(p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.early", "read", WA_IDS[0])]))),),
    )
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.early')", (welcome["msg_id"],))
    assert outbound_row(db, welcome["message"]["message_id"])["status"] == "read"
    changed = outbox_events(db, "message.status_changed")
    assert [(e["payload"]["status"], e["payload"]["previous_status"]) for e in changed] == [("read", "queued")]


def test_an_otp_message_is_deleted_not_archived(db, worker, meta_channel):
    db.execute("SELECT * FROM whatsapp_handler.request_otp('+447700900201', %s)", (meta_channel,))
    [otp] = claim(worker)
    code = otp["message"]["code"]
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.otp')", (otp["msg_id"],))
    assert queued(db) == []
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbound").fetchone()["n"] == 0
    dump = db.execute(
        "SELECT string_agg(t::text, ' ') AS s FROM (SELECT message::text FROM pgmq.a_outbound UNION ALL "
        "SELECT message::text FROM pgmq.q_outbound_dlq UNION ALL SELECT message::text FROM pgmq.q_outbox) t"
    ).fetchone()["s"]
    assert code not in (dump or "")


def test_retry_waits_and_release_does_not_count(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1)
    worker.execute("SELECT whatsapp_handler.worker_retry(%s, 3600, %s)", (welcome["msg_id"], Jsonb({"status": 503})))
    [row] = [q for q in queued(db) if q["msg_id"] == welcome["msg_id"]]
    assert row["headers"]["in_flight"] is False and row["headers"]["last_error"] == {"status": 503}
    assert claim(worker) == []  # the user's head waits for its backoff; the terms wait behind it
    db.execute("UPDATE pgmq.q_outbound SET vt = now() WHERE msg_id = %s", (welcome["msg_id"],))
    [again] = claim(worker)
    assert again["attempts"] == 2 and not again["in_doubt"]
    worker.execute("SELECT whatsapp_handler.worker_release(%s, 0)", (again["msg_id"],))
    [third] = claim(worker)
    assert third["attempts"] == 2


def test_the_messages_behind_a_retried_or_released_head_wait_with_it(db, worker, meta_channel):
    """Visible behind a waiting head, they could not be claimed but every claim walked them."""
    for wa_id in WA_IDS:
        first_contact(db, wa_id)
    [head, other] = claim(worker)
    # Not behind a head in flight: its settle would leave them waiting out the claim's 30 s.
    assert [q["vt"] <= db.execute("SELECT now() AS t").fetchone()["t"] for q in queued(db)
            if q["msg_id"] not in (head["msg_id"], other["msg_id"])] == [True, True]  # fmt: skip
    worker.execute("SELECT whatsapp_handler.worker_retry(%s, 3600, '{}')", (head["msg_id"],))
    worker.execute("SELECT whatsapp_handler.worker_release(%s, 60)", (other["msg_id"],))
    rows = {q["msg_id"]: q for q in queued(db)}
    for held in (head, other):
        group = rows[held["msg_id"]]["headers"]["x-pgmq-group"]
        behind = [q for q in rows.values() if q["headers"]["x-pgmq-group"] == group and q["msg_id"] > held["msg_id"]]
        assert len(behind) == 1 and behind[0]["vt"] == rows[held["msg_id"]]["vt"]
    # Never later than the head, and never earlier than its own time: a follower held for an hour
    # stays there when its head is released for a minute.
    [terms] = [q for q in rows.values() if q["message"]["user_id"] == head["message"]["user_id"]
               and q["msg_id"] != head["msg_id"]]  # fmt: skip
    db.execute("UPDATE pgmq.q_outbound SET vt = now() WHERE msg_id = %s", (head["msg_id"],))
    [again] = claim(worker, qty=1)
    worker.execute("SELECT whatsapp_handler.worker_release(%s, 60)", (again["msg_id"],))
    rows = {q["msg_id"]: q for q in queued(db)}
    assert rows[terms["msg_id"]]["vt"] == terms["vt"] > rows[head["msg_id"]]["vt"]


def test_a_message_queued_behind_a_waiting_head_waits_with_it(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [head] = claim(worker, qty=1)
    group = f"user:{head['message']['user_id']}"

    def enqueue() -> dict:
        msg_id = db.execute("SELECT whatsapp_handler._enqueue_outbound(%s, %s) AS id",
                            (Jsonb({"kind": "text", "channel_id": meta_channel}), group)).fetchone()["id"]  # fmt: skip
        return next(q for q in queued(db) if q["msg_id"] == msg_id)

    # In flight: the head may be settled any moment, so what joins it is visible at once.
    assert enqueue()["vt"] <= db.execute("SELECT now() AS t").fetchone()["t"]
    worker.execute("SELECT whatsapp_handler.worker_retry(%s, 600, '{}')", (head["msg_id"],))
    [waiting] = [q for q in queued(db) if q["msg_id"] == head["msg_id"]]
    assert enqueue()["vt"] == waiting["vt"]
    # No group: waits behind nothing.
    alone = db.execute("SELECT whatsapp_handler._enqueue_outbound(%s, NULL) AS id",
                       (Jsonb({"kind": "text", "channel_id": meta_channel}),)).fetchone()["id"]  # fmt: skip
    assert next(q["vt"] for q in queued(db) if q["msg_id"] == alone) < waiting["vt"]


def test_a_claim_never_settled_comes_back_in_doubt(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1, vt=1)
    # The worker died: its claim expires.
    db.execute("UPDATE pgmq.q_outbound SET vt = now() - interval '1 second' WHERE msg_id = %s", (welcome["msg_id"],))
    [again] = claim(worker)
    assert again["msg_id"] == welcome["msg_id"] and again["in_doubt"] and again["attempts"] == 2


def test_dead_letter_keeps_the_message_and_fails_a_rejected_one(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1)
    error = {"status": 400, "body": {"error": {"code": 131026}}}
    worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'rejected', %s)", (welcome["msg_id"], Jsonb(error)))
    [dead] = dead_letters(db)
    assert dead["reason"] == "rejected" and dead["error"] == error and dead["attempts"] == 1
    assert dead["message"] == welcome["message"] and dead["queue_msg_id"] == welcome["msg_id"]
    assert outbound_row(db, welcome["message"]["message_id"])["status"] == "failed"
    # The user's next message is no longer blocked.
    assert [c["message"]["reply_key"] for c in claim(worker)] == ["terms"]


def test_a_dead_otp_loses_its_code(db, worker, meta_channel):
    db.execute("SELECT * FROM whatsapp_handler.request_otp('+447700900201', %s)", (meta_channel,))
    [otp] = claim(worker)
    worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'provider_down', '{}')", (otp["msg_id"],))
    [dead] = dead_letters(db)
    assert "code" not in dead["message"] and dead["message"]["kind"] == "otp"


def test_claim_skips_channels_with_an_open_breaker(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    assert claim(worker, skip=[meta_channel]) == []
    assert len(claim(worker)) == 1


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        ("SELECT * FROM whatsapp_handler.worker_claim(%s, %s)", (0, 30)),
        ("SELECT * FROM whatsapp_handler.worker_claim(%s, %s)", (10, 0)),
        ("SELECT whatsapp_handler.worker_retry(%s, %s, '{}')", (1, -1)),
        ("SELECT whatsapp_handler.worker_dead_letter(%s, %s, '{}')", (1, "lost")),
    ],
)
def test_bad_arguments_are_refused(worker, meta_channel, sql, args):
    with raises_sqlstate("WH013"):
        worker.execute(sql, args)


def test_sent_refuses_a_missing_provider_id(db, worker, meta_channel):
    first_contact(db, WA_IDS[0])
    [welcome] = claim(worker, qty=1)
    with raises_sqlstate("WH013"):
        worker.execute("SELECT whatsapp_handler.worker_sent(%s, NULL)", (welcome["msg_id"],))


@pytest.mark.parametrize("role", ["relay", "analyst", "consumer"])
def test_only_the_worker_may_claim(connect_as, meta_channel, role):
    with raises_sqlstate("42501"):
        connect_as(role).execute("SELECT * FROM whatsapp_handler.worker_claim(1, 30)")


def test_the_worker_role_reaches_no_table_but_its_queue(worker):
    for table in ("whatsapp_handler.messages", "whatsapp_handler.users", "pgmq.q_outbox", "pgmq.q_outbound_dlq"):
        with raises_sqlstate("42501"):
            worker.execute(f"SELECT 1 FROM {table} LIMIT 1")
