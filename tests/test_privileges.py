"""Each role, logged in, can do what its part needs and nothing more."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import raises_sqlstate

PHONE = "+447700900123"

PRIVATE_TABLES = [
    "whatsapp_handler.users",
    "whatsapp_handler.user_preferences",
    "whatsapp_handler.otp_challenges",
    "whatsapp_handler.conversations",
    "whatsapp_handler.messages",
    "whatsapp_handler.message_keys",
    "whatsapp_handler.webhook_events",
    "whatsapp_handler.channels",
]
OWNER_ONLY_CALLS = [
    "SELECT whatsapp_handler.register_user('+15551230000', 1)",
    "SELECT whatsapp_handler.accept_terms(1, 'v1')",
    "SELECT whatsapp_handler.set_user_preferences(1, '{}')",
    "SELECT whatsapp_handler.block_user(1, 'x')",
    "SELECT whatsapp_handler.unblock_user(1)",
    "SELECT whatsapp_handler.touch_user_activity(1)",
    "SELECT whatsapp_handler.export_user(1)",
    "SELECT whatsapp_handler.erase_user(1)",
    "SELECT whatsapp_handler.add_channel('meta', 'x', '+15550001111', 'n')",
    "SELECT whatsapp_handler._emit_event('user.blocked', 1, '{}')",
    "SELECT whatsapp_handler._new_otp_code()",
    "SELECT whatsapp_handler.create_partition('whatsapp_handler.messages', '2030-01-01', '2030-02-01')",
]


def denied(conn: psycopg.Connection, statement: str) -> None:
    with raises_sqlstate("42501"):
        conn.execute(statement)


@pytest.mark.parametrize("login", ["relay", "worker", "analyst"])
def test_no_role_reads_or_writes_tables(connect_as, login):
    conn = connect_as(login)
    for table in PRIVATE_TABLES:
        denied(conn, f"SELECT 1 FROM {table} LIMIT 1")
        denied(conn, f"DELETE FROM {table}")
    denied(conn, "CREATE TABLE whatsapp_handler.intruder (id int)")


@pytest.mark.parametrize("login", ["relay", "worker", "analyst"])
def test_no_role_calls_owner_only_functions(connect_as, login):
    conn = connect_as(login)
    for call in OWNER_ONLY_CALLS:
        denied(conn, call)


def test_relay_requests_and_verifies_otp_only(connect_as, db, channel_id):
    relay = connect_as("relay")
    issued = relay.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id)).fetchone()
    assert issued["challenge_id"] > 0
    code = db.execute("SELECT message->>'code' AS c FROM pgmq.q_outbound").fetchone()["c"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert relay.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (PHONE, wrong)).fetchone()["o"] == "invalid"
    assert relay.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (PHONE, code)).fetchone()["o"] == "verified"
    # Errors raised inside a definer function reach the relay with their project code.
    with raises_sqlstate("WH001"):
        relay.execute("SELECT whatsapp_handler.verify_otp('bad', '000000')")
    # It cannot read the codes it caused to be queued, nor forge events.
    denied(relay, "SELECT * FROM pgmq.read('outbound', 30, 1)")
    denied(relay, "SELECT pgmq.send('outbox', '{}')")
    denied(relay, "SELECT * FROM pgmq.read('outbox', 30, 1)")


def test_worker_reaches_outbound_through_its_functions_only(connect_as, db, channel_id):
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    worker = connect_as("worker")
    # Not the queue itself: the queued code is read, and the message settled, by functions.
    denied(worker, "SELECT * FROM pgmq.read('outbound', 30, 10)")
    denied(worker, "SELECT * FROM pgmq.q_outbound")
    denied(worker, "DELETE FROM pgmq.q_outbound")
    denied(worker, "SELECT * FROM pgmq.a_outbound")
    [msg] = worker.execute("SELECT * FROM whatsapp_handler.worker_claim(10, 30, NULL)").fetchall()
    assert msg["message"]["kind"] == "otp"
    worker.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.1')", (msg["msg_id"],))
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == 0
    # It delivers messages; it does not create them, nor read the events.
    denied(worker, "SELECT pgmq.send('outbound', '{\"kind\": \"otp\"}')")
    denied(worker, "SELECT * FROM pgmq.read('outbox', 30, 1)")
    denied(worker, "SELECT * FROM whatsapp_handler.request_otp('+447700900123', 1)")
    denied(worker, "SELECT whatsapp_handler.verify_otp('+447700900123', '123456')")


def test_analyst_has_nothing_in_the_service_schemas(connect_as):
    analyst = connect_as("analyst")
    denied(analyst, "SELECT * FROM whatsapp_handler.verify_otp('+447700900123', '123456')")
    denied(analyst, "SELECT * FROM pgmq.q_outbox")
    denied(analyst, "SELECT * FROM pgmq.read('outbound', 30, 1)")


def test_relay_cannot_escape_the_fixed_search_path(connect_as, db, channel_id):
    """A relay that plants its own objects in a schema it controls cannot make the
    definer functions run them: their search_path is fixed."""
    relay = connect_as("relay")
    relay.execute("CREATE TEMP TABLE users (id bigint, phone text)")
    relay.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    n = db.execute("SELECT count(*) AS n FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()["n"]
    assert n == 1
