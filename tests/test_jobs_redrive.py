"""redrive_inbound and redrive_outbound (docs/jobs.md): the re-drive jobs' success,
failure with backoff, parking, and the operators' forced replay by msg_id."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import raises_sqlstate
from tests.test_jobs import set_setting

WA_ID = "447700900123"
LATE_REF = "999"  # a Meta phone_number_id with no channel yet: its webhooks are dead-lettered (WH003)


@pytest.fixture
def meta_channel(db) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support') AS id", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]


def add_late_channel(db) -> None:
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550002222', 'Late')", (LATE_REF,))


def dead_letter_a_webhook(db, wamid: str = "wamid.LATE1") -> int:
    """Ingests a webhook for a channel that does not exist yet; returns its dead letter's msg_id."""
    body = p.meta_text(WA_ID, wamid, phone_number_id=LATE_REF)
    result = db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'cid-late') AS r", (Jsonb(body),)).fetchone()["r"]
    assert result["outcome"] == "failed"
    return db.execute(
        "SELECT msg_id FROM pgmq.q_inbound_dlq WHERE (message ->> 'webhook_event_id')::bigint = %s",
        (result["webhook_event_id"],),
    ).fetchone()["msg_id"]


def inbound_letter(db, msg_id: int) -> dict | None:
    row = db.execute(
        "SELECT message, vt > clock_timestamp() + interval '50 minutes' AS later_50m, "
        "vt > clock_timestamp() + interval '110 minutes' AS later_110m, vt <= clock_timestamp() AS visible "
        "FROM pgmq.q_inbound_dlq WHERE msg_id = %s",
        (msg_id,),
    ).fetchone()
    return row


def make_due(db, queue: str, msg_id: int) -> None:
    """As if the backoff had passed."""
    db.execute(f"UPDATE pgmq.q_{queue} SET vt = clock_timestamp() - interval '1 second' WHERE msg_id = %s", (msg_id,))


def redrive_inbound(db, *args) -> dict:
    placeholders = ", ".join(["%s"] * len(args))
    return db.execute(f"SELECT whatsapp_handler.redrive_inbound({placeholders}) AS r", args).fetchone()["r"]


def redrive_outbound(db, *args) -> dict:
    placeholders = ", ".join(["%s"] * len(args))
    return db.execute(f"SELECT whatsapp_handler.redrive_outbound({placeholders}) AS r", args).fetchone()["r"]


# --- inbound ----------------------------------------------------------------------------


def test_inbound_failure_backs_off_then_success_processes_the_stored_webhook(db, meta_channel):
    set_setting(db, "redrive.inbound.backoff", "1 hour")
    msg_id = dead_letter_a_webhook(db)

    first = redrive_inbound(db)
    assert (first["failed"], first["redriven"], first["parked"]) == (1, 0, 0)
    assert first["results"][0]["sqlstate"] == "WH003" and first["results"][0]["attempts"] == 1
    letter = inbound_letter(db, msg_id)
    assert letter["message"]["attempts"] == 1 and letter["message"]["parked"] is False
    assert letter["later_50m"] and not letter["later_110m"]  # one backoff: 1 hour

    # Within the backoff the job leaves it alone.
    assert redrive_inbound(db)["results"] == []

    make_due(db, "inbound_dlq", msg_id)
    second = redrive_inbound(db)
    assert second["failed"] == 1 and second["results"][0]["attempts"] == 2
    assert inbound_letter(db, msg_id)["later_110m"]  # doubled: 2 hours

    add_late_channel(db)
    make_due(db, "inbound_dlq", msg_id)
    third = redrive_inbound(db)
    assert (third["redriven"], third["failed"]) == (1, 0)
    assert third["results"][0]["outcome"] == "processed"
    assert inbound_letter(db, msg_id) is None
    event = db.execute(
        "SELECT outcome, error FROM whatsapp_handler.webhook_events WHERE id = %s",
        (third["results"][0]["webhook_event_id"],),
    ).fetchone()
    assert event == {"outcome": "processed", "error": None}
    message = db.execute(
        "SELECT provider_message_id, body, correlation_id FROM whatsapp_handler.messages WHERE direction = 'inbound'"
    ).fetchone()
    # Stored as if it had been read the first time, with the webhook's correlation id.
    assert message == {"provider_message_id": "wamid.LATE1", "body": "hello", "correlation_id": "cid-late"}


def test_inbound_dead_letter_is_parked_after_its_attempts_and_only_a_person_replays_it(db, meta_channel):
    set_setting(db, "redrive.inbound.max_attempts", 2)
    msg_id = dead_letter_a_webhook(db)
    redrive_inbound(db)
    make_due(db, "inbound_dlq", msg_id)
    result = redrive_inbound(db)
    assert result["parked"] == 1 and result["results"][0]["result"] == "parked"
    letter = inbound_letter(db, msg_id)
    assert letter["message"]["parked"] is True and "parked_at" in letter["message"]
    assert letter["visible"]  # left visible in the queue for a person; the job skips it by its mark
    assert redrive_inbound(db)["results"] == []

    # Forced while the cause is still there: it stays parked, with one more attempt recorded.
    forced = redrive_inbound(db, 100, [msg_id])
    assert forced["results"][0]["result"] == "parked" and forced["results"][0]["attempts"] == 3

    add_late_channel(db)
    forced = redrive_inbound(db, 100, [msg_id, 987654])
    assert forced["redriven"] == 1 and forced["not_found"] == [987654]
    assert inbound_letter(db, msg_id) is None


def test_forced_inbound_replay_ignores_backoff_and_limit(db, meta_channel):
    set_setting(db, "redrive.inbound.backoff", "1 hour")
    ids = [dead_letter_a_webhook(db, f"wamid.F{i}") for i in range(3)]
    assert redrive_inbound(db, 2)["failed"] == 2  # the limit bounds the job
    add_late_channel(db)
    assert redrive_inbound(db)["results"][0]["msg_id"] == ids[2]  # only the one not backing off
    both = redrive_inbound(db, 1, ids[:2])  # forced: all given, whatever the limit and backoff
    assert both["redriven"] == 2
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == 0


def test_inbound_dead_letter_whose_webhook_is_gone_is_archived(db, meta_channel):
    msg_id = dead_letter_a_webhook(db)
    db.execute("DELETE FROM whatsapp_handler.webhook_events")
    assert redrive_inbound(db)["gone"] == 1
    assert inbound_letter(db, msg_id) is None
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_inbound_dlq WHERE msg_id = %s", (msg_id,)).fetchone()["n"] == 1


@pytest.mark.parametrize("fn", ["redrive_inbound", "redrive_outbound"])
@pytest.mark.parametrize("args", ["0", "10001", "NULL", "1, ARRAY(SELECT generate_series(1, 10001))::bigint[]"])
def test_redrive_arguments_out_of_range_are_refused(db, fn, args):
    with raises_sqlstate("WH024"):
        db.execute(f"SELECT whatsapp_handler.{fn}({args})")


# --- outbound ---------------------------------------------------------------------------


@pytest.fixture
def users(db) -> dict[str, int]:
    rows = db.execute(
        "INSERT INTO whatsapp_handler.users (phone) VALUES ('+447700900201'), ('+447700900202') RETURNING id"
    ).fetchall()
    live, gone = rows[0]["id"], rows[1]["id"]
    db.execute("UPDATE whatsapp_handler.users SET phone = NULL, erased_at = now() WHERE id = %s", (gone,))
    return {"live": live, "erased": gone}


def outbound_dead_letter(db, user_id: int, reason: str, redrives: int, age: str, kind: str = "text") -> int:
    message = {"kind": kind, "message_id": 1, "channel_id": 1, "user_id": user_id, "to": "+447700900201", "body": "hi"}
    if redrives:
        message["redrives"] = redrives
    letter = {
        "message": message,
        "reason": reason,
        "error": {"status": 503},
        "attempts": 5,
        "redrives": redrives,
        "dead_lettered_at": "2026-11-24T13:00:00Z",
    }
    return db.execute(
        f"INSERT INTO pgmq.q_outbound_dlq (vt, enqueued_at, message, headers) "
        f"VALUES (now(), now() - interval '{age}', %s, %s) RETURNING msg_id",
        (Jsonb(letter), Jsonb({"x-pgmq-group": f"user:{user_id}"})),
    ).fetchone()["msg_id"]


def outbound_queue(db) -> list[dict]:
    return db.execute("SELECT message, headers FROM pgmq.q_outbound ORDER BY msg_id").fetchall()


def dlq_ids(db) -> list[int]:
    return [r["msg_id"] for r in db.execute("SELECT msg_id FROM pgmq.q_outbound_dlq ORDER BY msg_id")]


def test_outbound_redrive_takes_back_provider_down_messages_old_enough(db, users):
    u = users["live"]
    # backoff: 5 minutes x 2^redrives, at most 6 hours; parked at 5 re-drives
    due = outbound_dead_letter(db, u, "provider_down", 0, "6 minutes")
    young = outbound_dead_letter(db, u, "provider_down", 0, "4 minutes")
    second_young = outbound_dead_letter(db, u, "provider_down", 1, "9 minutes")
    second_due = outbound_dead_letter(db, u, "provider_down", 1, "11 minutes")
    rejected = outbound_dead_letter(db, u, "rejected", 0, "1 day")
    otp = outbound_dead_letter(db, u, "provider_down", 0, "1 day", kind="otp")
    exhausted = outbound_dead_letter(db, u, "provider_down", 5, "7 hours")
    erased = outbound_dead_letter(db, users["erased"], "provider_down", 0, "1 day")

    result = redrive_outbound(db)

    by_id = {r["msg_id"]: r["result"] for r in result["results"]}
    assert by_id == {due: "redriven", second_due: "redriven", exhausted: "parked", erased: "erased"}
    assert dlq_ids(db) == [young, second_young, rejected, otp, exhausted]
    queued = outbound_queue(db)
    assert [q["message"]["redrives"] for q in queued] == [1, 2]
    assert all(q["headers"] == {"x-pgmq-group": f"user:{u}"} for q in queued)
    assert all(q["message"]["kind"] == "text" and q["message"]["to"] == "+447700900201" for q in queued)
    parked = db.execute("SELECT message FROM pgmq.q_outbound_dlq WHERE msg_id = %s", (exhausted,)).fetchone()
    assert parked["message"]["parked"] is True

    # Nothing more is due: parked letters stay parked, the rest wait.
    assert redrive_outbound(db)["results"] == []


def test_outbound_backoff_and_parking_follow_their_settings(db, users):
    letter = outbound_dead_letter(db, users["live"], "provider_down", 2, "30 minutes")  # due at 20 minutes
    set_setting(db, "redrive.outbound.backoff", "10 minutes")  # now due at 40 minutes
    assert redrive_outbound(db)["results"] == []
    set_setting(db, "redrive.outbound.max_redrives", 2)
    set_setting(db, "redrive.outbound.backoff_max", "15 minutes")  # the cap makes it due
    assert redrive_outbound(db)["results"] == [{"msg_id": letter, "result": "parked", "redrives": 2, "channel_id": 1}]


def test_forced_outbound_replay_takes_any_reason_and_parked_ones_but_no_otp(db, users):
    u = users["live"]
    young = outbound_dead_letter(db, u, "provider_down", 0, "1 minute")
    rejected = outbound_dead_letter(db, u, "rejected", 0, "1 minute")
    in_doubt = outbound_dead_letter(db, u, "in_doubt", 3, "1 minute")
    otp = outbound_dead_letter(db, u, "attempts_exhausted", 0, "1 day", kind="otp")
    parked = outbound_dead_letter(db, u, "provider_down", 5, "1 day")
    assert redrive_outbound(db)["parked"] == 1

    result = redrive_outbound(db, 1, [young, rejected, in_doubt, otp, parked, 424242])

    by_id = {r["msg_id"]: r["result"] for r in result["results"]}
    assert by_id == {young: "redriven", rejected: "redriven", in_doubt: "redriven", otp: "refused", parked: "redriven"}
    assert result["not_found"] == [424242]
    assert dlq_ids(db) == [otp]
    assert sorted(q["message"]["redrives"] for q in outbound_queue(db)) == [1, 1, 4, 6]
